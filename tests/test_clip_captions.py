"""The paper's clip filter as the visual filter's ``caption`` backend: a VLM captions a clip's
keyframes, MiniLM compares the caption with the speech, and a clip whose pictures do not match
loses its images but keeps its text; the caption ships in the clip view."""

from __future__ import annotations

import base64
import json

import pytest
from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context, read_jsonl
from llm_server import llm_server

from textbook import models
from textbook.clip_captions import PROMPT, picked
from textbook.config import _hash, load_settings, output_knobs
from textbook.context import Context
from textbook.export import export_dataset, validate_dataset
from textbook.pipeline import run_video, stage_by_name
from textbook.records import Keyframe
from textbook.runner import StageFailed, run_stage

CLIPS = [ClipSpec(0.0, 15.0, "the derivative tells us how fast a function changes, the slope of the tangent line",
                  keyframes=2, ocr=("Derivatives", "Derivatives\nslope of the tangent")),
         ClipSpec(15.0, 30.0, "newton's second law says force equals mass times acceleration", keyframes=1,
                  ocr=("",)),
         ClipSpec(30.0, 45.0, "and that is all for today", keyframes=0)]
CAPTIONS = {0: "A slide titled Derivatives showing the slope of a tangent line to a curve.",
            1: "A man in a blue shirt talking to the camera in an office."}


def _clip_of_image(ctx: Context, url: str) -> int:
    """Which clip a data URL's keyframe belongs to (the keyframes' bytes differ by clip)."""
    doc = json.loads(ctx.store.get_bytes(ctx.db.run("v1", "keyframes").artifacts[-1]["key"]))
    for clip in doc["clips"]:
        for kf in clip["keyframes"]:
            if url.endswith(base64.b64encode(ctx.store.get_bytes(kf["key"])).decode()):
                return clip["clip_index"]
    raise AssertionError("an image no keyframe has")


@pytest.fixture
def world(tmp_path):
    with llm_server() as server:
        ctx = make_context(tmp_path)
        add_knowledge_point(ctx, "calc-1")
        add_done_video(ctx, "v1", "calc-1", CLIPS)
        server.answer = lambda body: CAPTIONS[_clip_of_image(ctx, body["messages"][0]["content"][0]["image_url"]["url"])]
        vlm = {"backend": "openai", "endpoint": server.url, "model": "videollama2"}
        captioning = Context(ctx.settings.replace(visual_filter={"backend": "caption", "vlm": vlm}), ctx.store, ctx.db)
        yield captioning, server


def test_a_caption_unrelated_to_the_speech_drops_the_images_and_keeps_the_text(world):
    ctx, server = world
    outcome = run_stage(stage_by_name("visual_filter"), "v1", ctx)
    assert outcome.summary == {"clips": 3, "kept": 1, "dropped": {"caption_unrelated": 1, "no_keyframes": 1}}
    doc = json.loads(ctx.store.get_bytes(ctx.db.run("v1", "visual_filter").artifacts[0]["key"]))
    slide, speaker, empty = doc["clips"]
    assert (slide["kept"], slide["caption"]) == (True, CAPTIONS[0]) and slide["score"] >= 0.25
    assert (speaker["kept"], speaker["reason"], speaker["caption"]) == (False, "caption_unrelated", CAPTIONS[1])
    assert speaker["score"] < 0.25 and (empty["reason"], empty["caption"]) == ("no_keyframes", None)
    first = server.requests[0]["body"]["messages"][0]["content"]
    assert [p["type"] for p in first] == ["image_url", "image_url", "text"] and first[-1]["text"] == PROMPT
    assert len(server.requests) == 2  # a clip without keyframes is not asked about

    run_video("v1", ctx)  # what reads the visual filter runs again (slide_vqa: no model, not run)
    assert ctx.db.video("v1").status == "done"
    root = export_dataset(ctx).root
    assert validate_dataset(root) == []
    clips = [c for s in read_jsonl(root / "clips" / "part-00000.jsonl") for c in s["conversations"]
             if c["vid"] == "v1"]
    assert [c["caption"] for c in clips] == [CAPTIONS[0], CAPTIONS[1], None]
    assert clips[1]["keyframe_ssim"] == [] and clips[1]["asr"].startswith("newton's second law")
    assert clips[0]["keyframe_ssim"] and clips[0]["visual_kept"]
    part = root / "clips" / "part-00000.jsonl"
    part.write_text(part.read_text().replace(json.dumps(CAPTIONS[0]), "42"))
    assert any("caption must be a string or null" in p for p in validate_dataset(root))


def test_without_a_vlm_the_caption_backend_is_an_error_naming_the_setting(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "calc-1")
    add_done_video(ctx, "v1", "calc-1", CLIPS)
    no_vlm = Context(ctx.settings.replace(visual_filter={"backend": "caption"}), ctx.store, ctx.db)
    with pytest.raises(StageFailed, match=r"visual_filter\.vlm\.backend: unknown vlm backend 'none'; choose one of openai, transformers"):
        run_stage(stage_by_name("visual_filter"), "v1", no_vlm)


def test_a_tiny_random_vlm_captions_through_transformers(tmp_path):
    from textbook.train.tiny import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "tiny-vlm", ["user: describe the frames assistant: a slide"] * 10)
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "calc-1")
    add_done_video(ctx, "v1", "calc-1", CLIPS)
    vlm = {"backend": "transformers", "model": str(folder), "device": "cpu", "max_new_tokens": 4}
    tiny = Context(ctx.settings.replace(visual_filter={"backend": "caption", "vlm": vlm}), ctx.store, ctx.db)
    outcome = run_stage(stage_by_name("visual_filter"), "v1", tiny)
    doc = json.loads(ctx.store.get_bytes(ctx.db.run("v1", "visual_filter").artifacts[0]["key"]))
    assert outcome.summary["clips"] == 3 and all(isinstance(c["caption"], str) for c in doc["clips"][:2])


def test_frames_spread_over_the_clip_and_models_the_gpu_server_builds():
    frames = [Keyframe(0, k, float(k), f"k{k}") for k in range(1, 8)]
    assert [f.k for f in picked(frames, 3)] == [1, 4, 7] and [f.k for f in picked(frames, 1)] == [4]
    assert picked(frames[:2], 4) == frames[:2]
    settings = load_settings(environ={})
    caption = settings.replace(visual_filter={"backend": "caption", "vlm": {"backend": "openai", "model": "m",
                                                                           "endpoint": "http://vllm/v1"}})
    assert [(u.kind, u.where) for u in models.configured(caption)][-2:] == [
        ("vlm", "visual_filter.vlm"), ("text_embedder", "visual_filter.embedder")]
    new = {"vlm", "embedder", "caption_threshold", "caption_frames"}
    before = {k: v for k, v in output_knobs(settings.visual_filter).items() if k not in new}
    assert settings.section_hash("visual_filter") == _hash({"visual_filter": before})  # an old corpus re-runs nothing
