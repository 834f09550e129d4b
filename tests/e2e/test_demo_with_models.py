"""The demo course with every model stage pointed at an OpenAI-compatible server on loopback.

The server answers deterministically from each request (the prompts say which stage asks), so the
run shows what a configured corpus holds: two judges' verdicts per scored video in videos.jsonl,
refined transcripts, the metadata rule's verdicts, multiple-choice questions in sos/, text-rich
multi-slide questions in m4/, and InSI-SIM (with a tiny random CLIP from a local folder) in the card.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
import pytesseract
from airflow_server import free_port
from PIL import Image
from llm_server import LLMServer, llm_server

from textbook import clip_captions, judges, metadata_llm, qa_mcq, recurrent_captions, refine, video_qa
from textbook.config import load_settings
from textbook.demo.job import run_demo
from textbook.export import validate_dataset
from textbook.stages import slide_vqa
from textbook.train.tiny import build_tiny_clip

pytestmark = pytest.mark.slow

SCORES = {"judge-keeps": (8, 7, 9), "judge-rejects": (3, 6, 8)}  # relevance 3: under the minimum 5


def _text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p["text"] for p in content if p["type"] == "text")


def caption(parts: list[dict]) -> str:
    """A weak but real captioner: what tesseract reads on the frames, else a person on camera."""
    seen = []
    for part in parts:
        if part["type"] == "image_url":
            image = Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
            seen += [line.strip() for line in pytesseract.image_to_string(image).splitlines() if line.strip()]
    return f"A lecture slide that reads: {' '.join(dict.fromkeys(seen))}." if seen else "A person talking to the camera."


def answer(body: dict) -> str:
    """What a model would say, by the stage's system prompt."""
    system, user = _text(body["messages"][0]), _text(body["messages"][-1])
    if user == clip_captions.PROMPT:
        return caption(body["messages"][0]["content"])
    if any(user.startswith(p) for p in recurrent_captions.PROMPTS.values()):
        frames = sum(p["type"] == "image_url" for p in body["messages"][0]["content"])
        return f"A part of a lecture, seen in {frames} frames."
    if " of type Count: " in system and system.startswith("Write "):  # video_qa: one type answered, the rest None
        mc = "multiple-choice" in system
        question = "How many slides are shown?" + ("\nA. One\nB. Several" if mc else "")
        return json.dumps([{"Dimension": "Count", "Question": question, "Answer": "B" if mc else "Several."}])
    if system.startswith("Write ") and " of type " in system:
        return "None"
    if system == judges.SYSTEM:
        r, d, t = SCORES[body["model"]]
        return f'{{"relevance": {r}, "knowledge_density": {d}, "transcription_quality": {t}, "reason": "scripted"}}'
    if system == refine.SYSTEM:  # a faithful refinement: sentence case, a full stop
        return "\n".join(f"{n}: {t[:1].upper()}{t[1:].rstrip('.')}." for n, t in re.findall(r"^(\d+): (.*)$", user, re.M))
    if system == metadata_llm.SYSTEM:
        return '{"relevant": true, "unsafe": false, "reason": "a lecture on the topic"}'
    if system == slide_vqa.SYSTEM:
        first = re.search(r"Image 1 text: (.*)", user).group(1)
        return json.dumps({"question": "What do the first two slides cover?", "answer": first, "images": [1, 2]})
    if system == qa_mcq.PROMPT:
        return ('{"simplified_answer": "on the hat", "distractor_1": "under the bed", "distractor_2": "in the sky", '
                '"distractor_3": "behind the door"}')
    raise AssertionError(f"no scripted answer for the system prompt {system[:80]!r}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with llm_server() as server:
        server.answer = answer
        llm = {"backend": "openai", "endpoint": server.url}
        settings = load_settings(environ={}, data_root=str(tmp_path_factory.mktemp("demo-models")),
                                 metadata={"llm": {**llm, "model": "screener"}},
                                 refine={"llm": {**llm, "model": "refiner"},
                                         "judges": [{**llm, "model": m} for m in SCORES]},
                                 qa_mcq={"llm": {**llm, "model": "mcq"}},
                                 slide_vqa={"llm": {**llm, "model": "slides"}},
                                 visual_filter={"backend": "caption", "vlm": {**llm, "model": "videollama2"}},
                                 video_captions={"vlm": {**llm, "model": "llava-video"}},
                                 video_qa={"llm": {**llm, "model": "video-qa"}},
                                 export={"insi_sim_clip_model": str(build_tiny_clip(
                                     tmp_path_factory.mktemp("models") / "tiny-clip"))})
        result = run_demo(settings, port=free_port())
        yield result, Path(result.packed["root"]), server


def _records(root: Path) -> dict[str, dict]:
    return {r["video_id"]: r for r in map(json.loads, (root / "videos.jsonl").read_text().splitlines())}


def test_two_judges_per_scored_video_and_the_rule_that_combined_them(demo):
    result, root, _ = demo
    assert validate_dataset(root) == []
    records = _records(root)
    scored = [r for r in records.values() if r["judges"]]
    assert len(scored) == sum(s == "done" for s in result.final.values()) == 5
    for r in scored:
        assert [(j["judge"], j["verdict"]) for j in r["judges"]] == [
            ("openai:judge-keeps", "keep"), ("openai:judge-rejects", "reject")]
        [combined] = [v for v in r["verdicts"] if v["name"] == "llm_judges"]
        assert combined["passed"] and "1 of 2 judges rejected" in combined["reason"] and "all_reject: kept" in combined["reason"]
        assert r["refinement"]["refined"] and r["refinement"]["backend"] == "openai"
        first = r["verdicts"][0]  # the metadata stage's LLM rule, before download
        assert (first["name"], first["passed"]) == ("metadata_llm", True) and "screener" in first["reason"]


def test_every_model_stage_ran_against_the_endpoint(demo):
    _, root, server = demo
    models = {r["body"]["model"] for r in server.requests}
    assert models == {"screener", "refiner", *SCORES, "mcq", "slides", "videollama2", "llava-video", "video-qa"}
    mcq = json.loads((root / "sos" / "mcq.json").read_text())
    assert len(mcq) == 1 and sorted(mcq[0]["choices"]) == sorted(
        ["on the hat", "under the bed", "in the sky", "behind the door"])
    m4 = json.loads((root / "m4" / "m4_textbook_annotations.json").read_text())
    rich = [r for r in m4 if r["metadata"]["dataset"] == "textbook_text_rich_vqa"]
    assert rich and all(r["conversations"][0]["value"].count("<image>") == len(r["image"]) for r in rich)


def test_clip_captions_ship_in_the_clip_view_and_speaker_clips_lose_their_images(demo):
    _, root, _ = demo
    clips = [c for line in (root / "clips" / "part-00000.jsonl").read_text().splitlines()
             for c in json.loads(line)["conversations"] if c["vid"] != "End of a Video"]
    captioned = [c for c in clips if c["caption"]]
    assert captioned and all(c["caption"] is None for c in clips if c not in captioned and not c["keyframe_ssim"]
                             and not c["keyframe_ssim_dropped"])
    speakers = [c for c in captioned if c["caption"] == "A person talking to the camera."]
    assert speakers and all(not c["visual_kept"] and c["visual_reason"] == "caption_unrelated" and c["asr"]
                            for c in speakers)
    assert any(c["visual_kept"] and c["caption"].startswith("A lecture slide that reads:") for c in captioned)


def test_the_llava_video_view_holds_every_kept_lecture_s_segments(demo):
    result, root, _ = demo
    caps = [r for path in sorted((root / "llava_video").glob("*/*_cap_processed.json")) for r in json.loads(path.read_text())]
    assert {r["id"].rsplit("_", 1)[0] for r in caps} == {v for v, s in result.final.items() if s == "done"}
    assert all(r["conversations"][0]["value"].startswith("<image>\n") for r in caps)
    oe = [r for path in (root / "llava_video").glob("*/*_oe_v0_1_qa_processed.json") for r in json.loads(path.read_text())]
    assert len(oe) == len(caps) and all(r["conversations"][1]["value"] == "Several." for r in oe)


def test_the_card_shows_insi_sim_with_clip(demo):
    _, root, _ = demo
    card = (root / "README.md").read_text()
    section = card.split("## Coherence (InSI-SIM", 1)[1].split("\n## ", 1)[0]
    assert "SSIM only" not in section and "0.686" in section  # ours beside the paper's Table 1 figure
    assert (root / "insi_sim.jsonl").read_text().strip()
