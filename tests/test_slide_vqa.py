"""The M4-Instruct view's model-based task: the slide_vqa stage over a loopback LLM, and its
records in the view (one placeholder per image, only images the dataset shows, never faked)."""

from __future__ import annotations

import json

import pytest
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
from llm_server import llm_server
from state_helpers import publish

from textbook.context import Context
from textbook.export import export_dataset, validate_dataset
from textbook.export.m4instruct import ARRAY, IMAGE
from textbook.pipeline import stage_by_name
from textbook.runner import run_stage
from textbook.stages import slide_vqa

CLIPS = [ClipSpec(0.0, 15.0, "a triangle has three sides", keyframes=2, ocr=("Triangles", "Triangles\nA + B + C = 180")),
         ClipSpec(15.0, 30.0, "the angles add up", keyframes=2, ocr=("Angles", "Angles\nright angle = 90")),
         ClipSpec(30.0, 45.0, "now a square", keyframes=1, ocr=("Squares",)),
         ClipSpec(45.0, 60.0, "here the speaker talks", keyframes=1, visual_kept=False, ocr=("FACE",)),
         ClipSpec(60.0, 75.0, "the end of the lesson", keyframes=1, ocr=("Summary",))]


def answer(body: dict) -> str:
    user = body["messages"][1]["content"]
    if "Image 1 text: Triangles\n" in user:  # the first window: a question citing slides 2 and 3
        return ('Sure: {"question": "What do the angles of <image> a triangle add up to, and what is a right '
                'angle?", "answer": "180 and 90", "images": [2, 3]}')
    return "I cannot write one for these."  # the second window, asked twice


@pytest.fixture
def world(tmp_path):
    with llm_server() as server:
        server.answer = answer
        ctx = make_context(tmp_path, image_tokens=10, token_budget=200)
        add_knowledge_point(ctx, "geo-1")
        add_done_video(ctx, "tri", "geo-1", CLIPS)  # every stage finished, slide_vqa without a model
        llm = {"backend": "openai", "endpoint": server.url, "model": "slides"}
        with_llm = Context(ctx.settings.replace(slide_vqa={"llm": llm}), ctx.store, ctx.db)
        outcome = run_stage(stage_by_name("slide_vqa"), "tri", with_llm)
        assert publish(with_llm, "tri") == "done"
        yield with_llm, outcome, server


def test_windows_skip_untexted_and_visually_dropped_keyframes_and_the_answer_is_checked(world):
    ctx, outcome, server = world
    assert outcome.summary == {"windows": 2, "items": 1, "failed": 1}  # FACE's clip lost its images
    assert len(server.requests) == 3  # one answer, one unreadable answer asked again
    doc = json.loads(ctx.store.get_bytes(ctx.db.run("tri", "slide_vqa").artifacts[0]["key"]))
    [item], [failed] = doc["items"], doc["failed"]
    assert item["question"].startswith("What do the angles of image a triangle")  # no stray placeholder
    assert (item["answer"], item["cites"], len(item["keys"])) == ("180 and 90", [2, 3], 3)
    assert len(failed["answers"]) == 2 and failed["reason"] == "no readable question in two answers"
    assert "Image 3 text: Angles" in server.requests[0]["body"]["messages"][1]["content"]


def test_the_view_adds_text_rich_records_over_the_images_it_ships(world):
    ctx, _, _ = world
    root = export_dataset(ctx).root
    assert validate_dataset(root) == []
    [record] = [r for r in json.loads((root / ARRAY).read_text()) if r["metadata"]["dataset"] == "textbook_text_rich_vqa"]
    human = record["conversations"][0]["value"]
    assert human.count(IMAGE) == len(record["image"]) == 3 and record["conversations"][1]["value"] == "180 and 90"
    assert all((root / p).is_file() for p in record["image"])
    assert "text_rich_vqa" in (root / "README.md").read_text()


@pytest.mark.parametrize("answer_text, n, ok", [
    ('{"question": "q", "answer": "a", "images": [1, 2]}', 2, True),
    ('{"question": "q", "answer": "a", "images": [1]}', 2, False),  # one slide: not multi-slide
    ('{"question": "q", "answer": "a", "images": [1, 5]}', 3, False),  # no slide 5
    ('{"question": "", "answer": "a", "images": [1, 2]}', 2, False),
    ('{"question": "q", "answer": "a", "images": [true, 2]}', 2, False),
])
def test_unreadable_answers(answer_text, n, ok):
    assert (slide_vqa.parse(answer_text, n) is not None) == ok


def test_no_model_no_questions_and_the_reason_recorded(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "geo-1")
    add_done_video(ctx, "tri", "geo-1", CLIPS)
    outcome = run_stage(stage_by_name("slide_vqa"), "tri", ctx, force=True)
    assert outcome.summary == {"not_run": "no LLM configured (slide_vqa.llm.backend: none)"}


def test_switched_off_for_the_video_s_knowledge_point(world):
    ctx, _, _ = world
    off = Context(ctx.settings.replace(slide_vqa={"enabled": False, "knowledge_points": ["other-kp"]}), ctx.store, ctx.db)
    outcome = run_stage(stage_by_name("slide_vqa"), "tri", off)
    assert outcome.summary == {"not_run": "slide_vqa.enabled is off and the video's knowledge point is not in "
                                          "slide_vqa.knowledge_points"}
    on = Context(ctx.settings.replace(slide_vqa={"enabled": False, "knowledge_points": ["geo-1"]}), ctx.store, ctx.db)
    assert run_stage(stage_by_name("slide_vqa"), "tri", on).summary["windows"] == 2
