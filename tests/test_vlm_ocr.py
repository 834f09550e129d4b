"""The ``vlm`` OCR backend (the paper's InternVL2 reading): a VLM behind a loopback OpenAI-compatible
server with scripted answers reads rendered slides, formulas as LaTeX; its keyframe score drops a
low-quality keyframe from the export; an unparseable score is asked once more, then recorded.
A tiny random LLaVA runs the same path through the transformers backend."""

from __future__ import annotations

import json

import pytest
from export_helpers import (ClipSpec, add_done_video, add_knowledge_point, clip_samples, obelics_samples,
                            read_jsonl)
from llm_server import llm_server
from slide_helpers import face, formula, plot, prepare, slide, write_video

from textbook import models
from textbook.artifacts import read_input
from textbook.config import OcrSettings, load_settings
from textbook.context import Context
from textbook.export import export_dataset
from textbook.export.validate import validate_dataset
from textbook.records import OcrResult
from textbook.runner import StageFailed, run_stage
from textbook.stages import keyframes, ocr, visual_filter
from textbook.vlm_ocr import PROMPT_VERSION, SCORE_PROMPT, TEXT_PROMPT, scored, text_lines

SIZE = (640, 360)
VID = "vlm_vid"
CLIPS = [(0.0, 4.0, "Gauss's law says the flux counts the charge."), (4.0, 8.0, "Here the oscillation dies out.")]
GAUSS = r"$\nabla \cdot \mathbf{E} = \frac{\rho}{\varepsilon_0}$"


@pytest.fixture(scope="module")
def lecture(tmp_path_factory):
    """A text slide, a formula, the speaker, a plot: four keyframes over two clips."""
    states = [(slide("Maxwell's equations", ["Gauss's law"], SIZE), 2.0), (formula(GAUSS, SIZE), 2.0),
              (face(SIZE), 2.0), (slide("Damped oscillation", [], SIZE, picture=plot()), 2.0)]
    return write_video(states, tmp_path_factory.mktemp("vlm") / "lecture.mp4", fps=5)


@pytest.fixture
def server():
    with llm_server() as s:
        yield s


def _context(tmp_path, **ocr_knobs) -> Context:
    return Context.from_settings(load_settings(environ={}, data_root=str(tmp_path / "data"), ocr=ocr_knobs,
                                               visual_filter={"backend": "none"}, export={"insi_sim_samples": 0}))


def test_answers_are_cleaned_to_lines_and_scores_parsed():
    assert text_lines("```latex\n" + GAUSS + "\n```") == [GAUSS]  # backslashes kept
    assert text_lines("No text.") == text_lines("There is no text in the image.") == text_lines("  ") == []
    assert text_lines("No pain, no gain") == ["No pain, no gain"]
    reading = scored('```json\n{"quality": 2, "issues": ["Occluded"]}\n```\nForces\n' + GAUSS)
    assert (reading.quality, reading.issues, reading.lines) == (2, ("occluded",), ["Forces", GAUSS])
    assert scored('{"quality": 4}\nno text').lines == []
    for bad in ("Forces", '{"quality": "high"}', '{"quality": 6}', '{"quality": true}', '{"quality": 3, "issues": 1}'):
        assert scored(bad) is None, bad


def test_the_vlm_reads_formulas_scores_keyframes_and_the_export_drops_the_low_quality_one(tmp_path, lecture, server):
    ctx = _context(tmp_path, backend="vlm", score_keyframes=True,
                   vlm={"backend": "openai", "endpoint": server.url, "model": "internvl2"})
    prepare(ctx, VID, lecture, CLIPS)
    run_stage(keyframes.STAGE, VID, ctx)
    server.script('{"quality": 5, "issues": []}\nMaxwell\'s equations\nGauss\'s law',
                  "```\n" + '{"quality": 4, "issues": []}' + "\nMaxwell's equations\n" + GAUSS + "\n```",
                  '{"quality": 1, "issues": ["low_information"]}\nProf. Ada',
                  "A plot of a damped oscillation.",  # no score: asked again
                  "Damped oscillation\nProf. Ada")  # still none: unparseable, kept
    outcome = run_stage(ocr.STAGE, VID, ctx)

    doc = read_input(ctx, VID, "ocr")
    slide_, gauss, speaker, damped = (OcrResult.from_dict(r) for r in doc["results"])
    assert gauss.text.splitlines() == ["Maxwell's equations", GAUSS] and gauss.deduplicated == GAUSS
    assert (slide_.quality, gauss.quality, slide_.dropped, gauss.dropped) == (5, 4, "", "")
    assert (speaker.quality, speaker.issues, speaker.scoring) == (1, ["low_information"], "scored")
    assert speaker.dropped == "quality 1 under ocr.min_quality 3: low_information"
    assert (damped.scoring, damped.quality, damped.dropped) == ("unparseable", None, "")
    # the dropped speaker frame is not what the plot is compared with: "Prof. Ada" is new after the formula
    assert damped.deduplicated.splitlines() == ["Damped oscillation", "Prof. Ada"]
    assert slide_.confidence == [] and doc["engine"] == {
        "backend": "vlm", "vlm": "openai:internvl2", "prompt_version": PROMPT_VERSION, "score_keyframes": True,
        "min_quality": 3}
    assert outcome.summary["dropped_keyframes"] == 1 and outcome.summary["unparseable"] == 1
    requests = [r["body"] for r in server.requests]
    assert len(requests) == 5 and all(b["model"] == "internvl2" for b in requests)
    parts = requests[0]["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,") and parts[1]["text"] == SCORE_PROMPT
    assert "LaTeX" in SCORE_PROMPT and requests[4]["messages"] == requests[3]["messages"]  # the same keyframe again

    run_stage(visual_filter.STAGE, VID, ctx)
    add_knowledge_point(ctx, "phys-1", subject="Physics")
    add_done_video(ctx, VID, "phys-1", [ClipSpec(s, e, t) for s, e, t in CLIPS],
                   keep=("metadata", "download", "audio", "transcript", "filters", "refine", "clips", "keyframes", "ocr",
                         "visual_filter"))
    root = export_dataset(ctx).root
    assert validate_dataset(root) == []
    dropped = speaker.key.rsplit("/", 1)[-1]
    shipped = [p.name for p in (root / "images").rglob("*.jpg")]
    assert len(shipped) == 3 and dropped not in shipped
    images = [i for s in obelics_samples(root) for i in s["images"] if i]
    assert len(images) == 3 and not any(dropped in i for i in images)
    assert any(GAUSS in t for s in obelics_samples(root) for t in s["text_ocr_list"] if t)
    conversations = [c for s in clip_samples(root) for c in s["conversations"] if c.get("vid") == VID]
    assert not any(dropped in json.dumps(c) for c in conversations)
    [record] = read_jsonl(root / "videos.jsonl")
    assert record["counts"]["keyframes"] == record["counts"]["images"] == 3
    card = (root / "README.md").read_text()
    ocr_row = next(line for line in card.splitlines() if line.startswith("| OCR (`ocr.backend`"))
    assert "| vlm |" in ocr_row and "1 keyframe(s) dropped by the VLM keyframe score" in ocr_row
    assert f"prompt `{PROMPT_VERSION}`" in card and "formulas in LaTeX" in card
    assert "except the 1 the VLM keyframe score dropped" in card


def test_without_the_score_the_plain_text_prompt_is_sent_and_nothing_is_dropped(tmp_path, lecture, server):
    ctx = _context(tmp_path, backend="vlm", vlm={"backend": "openai", "endpoint": server.url, "model": "internvl2"})
    prepare(ctx, VID, lecture, CLIPS)
    run_stage(keyframes.STAGE, VID, ctx)
    server.answer = lambda body: "No text."
    server.script("Maxwell's equations\nGauss's law", "```latex\n" + GAUSS + "\n```")
    outcome = run_stage(ocr.STAGE, VID, ctx)
    results = [OcrResult.from_dict(r) for r in read_input(ctx, VID, "ocr")["results"]]
    assert [r.text for r in results] == ["Maxwell's equations\nGauss's law", GAUSS, "", ""]
    assert all(r.scoring == "" and r.quality is None and not r.dropped for r in results)
    assert {r["body"]["messages"][0]["content"][1]["text"] for r in server.requests} == {TEXT_PROMPT}
    assert "dropped_keyframes" not in outcome.summary


def test_a_tiny_random_vlm_runs_the_ocr_path_through_transformers(tmp_path, lecture):
    from textbook.train.tiny import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "tiny-vlm", ["user: transcribe the slide assistant: Gauss's law"] * 10)
    ctx = _context(tmp_path, backend="vlm", score_keyframes=True,
                   vlm={"backend": "transformers", "model": str(folder), "device": "cpu", "max_new_tokens": 6})
    prepare(ctx, VID, lecture, CLIPS)
    run_stage(keyframes.STAGE, VID, ctx)
    outcome = run_stage(ocr.STAGE, VID, ctx)
    results = [OcrResult.from_dict(r) for r in read_input(ctx, VID, "ocr")["results"]]
    assert len(results) == outcome.summary["keyframes"] == 4
    assert all(isinstance(r.text, str) for r in results)  # random words: the path is real, the text garbage
    assert all(r.scoring == "unparseable" and not r.dropped for r in results)  # kept after one retry each
    assert outcome.summary["unparseable"] == 4 and outcome.summary["dropped_keyframes"] == 0


def test_the_vlm_backend_without_a_model_and_the_score_without_the_vlm_name_their_settings(tmp_path, lecture):
    with pytest.raises(models.BackendError, match=r"ocr\.backend 'vlm' needs ocr\.vlm\.backend"):
        models.build("ocr", OcrSettings(backend="vlm"), "ocr")
    for knobs, message in (({"backend": "vlm"}, r"ocr\.vlm\.backend"),
                           ({"score_keyframes": True}, r"ocr\.score_keyframes needs ocr\.backend vlm")):
        ctx = _context(tmp_path / message[:8], **knobs)
        prepare(ctx, VID, lecture, CLIPS)
        run_stage(keyframes.STAGE, VID, ctx)
        with pytest.raises(StageFailed, match=message):
            run_stage(ocr.STAGE, VID, ctx)


def test_the_ocr_vlm_is_not_the_gpu_model_server_s_and_the_new_knobs_re_run_nothing_until_set():
    settings = load_settings(environ={})
    vlm = settings.replace(ocr={"backend": "vlm", "vlm": {"backend": "openai", "endpoint": "http://vllm:8000/v1",
                                                          "model": "internvl2"}})
    # the ocr task runs on the default queue: a model the GPU server pre-built would go unused there
    assert not any(use.kind == "vlm" for use in models.configured(vlm) + models.configured(settings))
    from textbook.config import _hash, output_knobs

    new = {"vlm", "score_keyframes", "min_quality"}
    before = {k: v for k, v in output_knobs(settings.ocr).items() if k not in new}
    assert settings.section_hash("ocr") == _hash({"ocr": before})  # as before the backend existed
    assert settings.replace(ocr={"score_keyframes": True}).section_hash("ocr") != settings.section_hash("ocr")
