"""LLaVA-Video-178K from our videos: segments at clip boundaries, the recurrent captions as a stage
that resumes after a real kill, the 16-type questions, and the release's bucket layout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from export_helpers import ClipSpec, add_done_video, add_knowledge_point
from llm_server import llm_server
from test_recurrent_captions import render

from textbook import video_qa
from textbook.artifacts import output_key, read_input
from textbook.config import load_settings
from textbook.context import Context
from textbook.export import export_dataset, validate_dataset
from textbook.export.llava_video import IMAGE, array_path, bucket, meta_path
from textbook.media import probe
from textbook.pipeline import run_video, stage_by_name
from textbook.recurrent_captions import plan
from textbook.report import write_report
from textbook.runner import run_stage
from textbook.stages.llava_video import segments

SAID = ["red is the first colour", "green comes next", "then blue", "yellow after that", "and cyan at the end"]
CLIPS = [ClipSpec(15.0 * k, 15.0 * (k + 1), said, keyframes=1, ocr=(f"Colour {k + 1}",)) for k, said in enumerate(SAID)]
MAX_S = 50.0  # segments 0-45 s (bucket 30_60_s) and 45-75 s (0_30_s)
CALLS = sum(len(plan(d)) for d in (45.0, 30.0))


def qa_answer(body: dict) -> str:
    text = body["messages"][0]["content"]
    kind = text.split(" of type ", 1)[1].split(":", 1)[0]
    mc = "multiple-choice" in text
    if kind == "Count":
        q = "How many colours are shown?\nA. Two\nB. Five\nC. Eight\nD. Ten" if mc else "How many colours are shown?"
        return json.dumps([{"Dimension": kind, "Question": q, "Answer": "B" if mc else "Five colours are shown."}])
    if kind == "Time Order" and not mc:  # a near-duplicate of the Count question: removed by MiniLM
        return json.dumps([{"Dimension": kind, "Question": "How many colours are shown?", "Answer": "Five."}])
    if kind == "Plot":
        return json.dumps([{"Dimension": kind, "Question": "What is the story?", "Answer": "The video does not mention a story."}])
    return "None"


def answer(body: dict) -> str:
    content = body["messages"][0]["content"]
    if isinstance(content, str):
        return qa_answer(body)
    return f"caption {sum(p['type'] == 'image_url' for p in content)} frames"


@pytest.fixture
def world(tmp_path):
    with llm_server() as server:
        server.answer = answer
        config = tmp_path / "textbook.yaml"
        config.write_text(yaml.safe_dump({
            "data_root": str(tmp_path / "data"),
            "video_captions": {"vlm": {"backend": "openai", "endpoint": server.url, "model": "llava-video",
                                       "timeout": 60}, "max_segment_s": MAX_S, "grounding": True},
            "video_qa": {"llm": {"backend": "openai", "endpoint": server.url, "model": "qa"}}}))
        ctx = Context.from_settings(load_settings(config, environ={}))
        before = Context(ctx.settings.replace(video_captions={"vlm": {"backend": "none"}}), ctx.store, ctx.db)
        add_knowledge_point(ctx, "colours-1")
        add_done_video(before, "v1", "colours-1", CLIPS)  # every stage finished, without the VLM
        media_key = read_input(ctx, "v1", "download", "info.json")["media_key"]
        ctx.store.put_file(media_key, render(tmp_path / "v.mp4"))
        yield ctx, server, config


def test_segments_are_cut_at_clip_boundaries_and_never_longer_than_the_maximum():
    clips = [{"index": k, "start": s, "end": e} for k, (s, e) in enumerate([(0, 15), (15, 30), (30, 45), (45, 250), (250, 260)])]
    assert [[c["index"] for c in g] for g in segments(clips, 40)] == [[0, 1], [2], [3], [4]]  # a long clip alone
    assert [[c["index"] for c in g] for g in segments(clips, 600)] == [[0, 1, 2, 3, 4]]
    assert [bucket(d) for d in (12, 30.2, 45, 100, 179.9, 181)] == ["0_30_s", "0_30_s", "30_60_s", "1_2_m", "2_3_m", "3_10_m"]


def test_a_kill_mid_video_resumes_at_the_next_call(world):
    ctx, server, config = world
    release, killed_at = threading.Event(), 3  # the level-1 call of interval 3
    original = server.answer
    server.answer = lambda body: (release.wait(60) and False) or original(body) if len(server.requests) == killed_at \
        else original(body)
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys; from textbook.config import load_settings; from textbook.context import Context; "
        "from textbook.pipeline import stage_by_name; from textbook.runner import run_stage; "
        f"run_stage(stage_by_name('video_captions'), 'v1', Context.from_settings(load_settings({str(config)!r})))")],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(server.requests) < killed_at and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert len(server.requests) == killed_at, f"the worker never reached the call it is killed in: " \
        f"{child.poll()} {child.stderr.read()[-2000:] if child.poll() is not None else ''}"
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    release.set()
    state = ctx.store.get_json(output_key(ctx, "v1", "video_captions", "state_0.json"))
    assert len(state["captions"]) == killed_at - 1  # every answered call saved; the killed one not
    server.answer = original
    outcome = run_stage(stage_by_name("video_captions"), "v1", ctx)  # the claim's process is gone: taken over
    assert outcome.status == "done" and outcome.summary["calls"] == CALLS
    assert len(server.requests) == CALLS + 1  # the killed call asked again, none of those before it
    resumed = server.requests[killed_at]["body"]["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in resumed) == 10  # interval 3's frames, 20-29 s
    assert "Description of interval 2 (level 1): caption 10 frames" in resumed[-1]["text"]


def test_captions_questions_and_the_bucket_layout(world, tmp_path):
    ctx, server, _ = world
    assert run_stage(stage_by_name("video_captions"), "v1", ctx).summary == {"segments": 2, "calls": CALLS,
                                                                            "grounding": True}
    grounded = server.requests[0]["body"]["messages"][0]["content"][-1]["text"]
    assert "Narration: red is the first colour" in grounded and "On screen: Colour 1" in grounded
    qa = run_stage(stage_by_name("video_qa"), "v1", ctx)
    asked = server.requests[CALLS:]
    assert len(asked) == 2 * 2 * len(video_qa.TYPES)  # each segment: 16 types, open-ended and multiple choice
    assert qa.summary == {"segments": 2, "pairs": 4}  # Count oe + mc per segment; the duplicate and "does not" gone
    run_video("v1", ctx)
    assert ctx.db.video("v1").status == "done"
    root = export_dataset(ctx).root
    assert validate_dataset(root) == []
    caps = json.loads((root / array_path("30_60_s", "cap")).read_text()) + \
        json.loads((root / array_path("0_30_s", "cap")).read_text())
    assert sorted(r["id"] for r in caps) == ["v1_0", "v1_1"]
    for name in ("0_30_s", "30_60_s"):
        folder = root / array_path(name, "cap")
        for kind in ("cap", "oe", "mc"):
            for r in json.loads((root / array_path(name, kind)).read_text()):
                human = r["conversations"][0]["value"]
                assert human.startswith(f"{IMAGE}\n") and human.count(IMAGE) == 1
                assert r["data_source"] == f"{name}_textbook_v0_1"
                video = folder.parent / r["video"]
                assert bucket(probe(video).duration) == name and probe(video).duration <= MAX_S + 0.5
        import datasets
        loaded = datasets.load_dataset("json", data_files=str(root / array_path(name, "mc")), split="train")
        assert loaded[0]["conversations"][1]["value"] == "B"
    meta = [json.loads(line) for line in (root / meta_path("30_60_s")).read_text().splitlines()]
    assert {m["kind"] for m in meta} == {"cap", "oe", "mc"} and meta[0]["grounding"] is True
    assert "llava_video/" in (root / "README.md").read_text()
    m4 = [r for r in json.loads((root / "m4" / "m4_textbook_annotations.json").read_text())
          if r["metadata"]["dataset"] == "textbook_video_detailed_caption"]  # the M4 task reusing the captions
    assert [len(r["image"]) for r in m4] == [3, 2] and all(r["conversations"][1]["value"] == "caption 0 frames"
                                                            and r["conversations"][0]["value"].count(IMAGE) == len(r["image"])
                                                            for r in m4)
    write_report(root)
    report = (root / "report" / "video_captions.html").read_text()
    assert report.count('<div class="record"') == 2 and "How many colours are shown?" in report
    for src in re.findall(r'<video [^>]*src="([^"]+)"', report):
        assert (root / "report" / src).resolve().is_file()
    assert 'href="video_captions.html"' in (root / "report" / "index.html").read_text()
    next((root / array_path("30_60_s", "cap")).parent.glob("videos/*.mp4")).unlink()
    assert any("does not exist" in p for p in validate_dataset(root))


def test_without_models_or_switched_off_the_stages_say_why(world):
    ctx, _, _ = world
    none = Context(ctx.settings.replace(video_captions={"vlm": {"backend": "none"}}), ctx.store, ctx.db)
    assert run_stage(stage_by_name("video_captions"), "v1", none, force=True).summary == {
        "not_run": "no VLM configured (video_captions.vlm.backend: none)"}
    assert run_stage(stage_by_name("video_qa"), "v1", none, force=True).summary["not_run"].startswith(
        "video_captions did not run")
    off = Context(ctx.settings.replace(video_captions={"enabled": False}), ctx.store, ctx.db)
    assert "video_captions.knowledge_points" in run_stage(stage_by_name("video_captions"), "v1", off).summary["not_run"]
