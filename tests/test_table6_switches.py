"""The paper's Table 6 switches in the card: the keyframe extractor, ASR refinement and OCR each
name what the exported videos were made with and what that did to the corpus."""

from __future__ import annotations

from export_helpers import ClipSpec, add_done_video, add_knowledge_point, make_context
from textbook.context import Context
from textbook.export import export_dataset


def _with(ctx: Context, **sections) -> Context:
    return Context(settings=ctx.settings.replace(**sections), store=ctx.store, db=ctx.db)


def _switch_rows(card: str) -> dict[str, list[str]]:
    section = card.split("## Ablation switches (the paper's Table 6)")[1].split("## Files")[0]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    return {row[0].split(" (")[0]: row[1:] for row in rows}


def test_the_card_records_each_switch_and_its_effect(tmp_path):
    ctx = make_context(tmp_path, insi_sim_samples=0)
    add_knowledge_point(ctx, "math-1")
    ablated = _with(ctx, keyframes={"extractor": "pixel"}, ocr={"backend": "none"})
    add_done_video(ablated, "a1", "math-1", [ClipSpec(0.0, 15.0, "um so the slope is", refined="The slope is"),
                                             ClipSpec(15.0, 30.0, "the same words")])
    rows = _switch_rows((export_dataset(ctx).root / "README.md").read_text())
    assert rows["Keyframe extractor"] == ["pixel", "2 keyframes shown, 120.0 per video hour"]
    assert rows["ASR refinement"] == ["none", "1 of 2 clips' text changed by the refinement"]
    assert rows["OCR"] == ["none", "0 OCR tokens in `text_ocr_list`"]


def test_videos_made_under_different_switches_are_counted_apart(tmp_path):
    ctx = make_context(tmp_path, insi_sim_samples=0)
    add_knowledge_point(ctx, "math-1")
    add_done_video(ctx, "a1", "math-1", [ClipSpec(0.0, 15.0, "one", ocr=("Slope of a line",))])
    add_done_video(_with(ctx, keyframes={"extractor": "clip", "clip_model": "/models/clip"}), "a2", "math-1",
                   [ClipSpec(0.0, 15.0, "two")])
    rows = _switch_rows((export_dataset(ctx).root / "README.md").read_text())
    assert rows["Keyframe extractor"][0] in ("ssim (1 video(s)); clip (1 video(s))",
                                             "clip (1 video(s)); ssim (1 video(s))")
    assert rows["OCR"] == ["tesseract", "4 OCR tokens in `text_ocr_list`"]


def test_the_extractor_switch_re_runs_nothing_until_it_is_set():
    from textbook.config import _hash, load_settings, output_knobs

    settings = load_settings(environ={})
    new = {"extractor", "pixel_threshold", "clip_threshold", "clip_model"}
    before = {k: v for k, v in output_knobs(settings.keyframes).items() if k not in new}
    assert settings.section_hash("keyframes") == _hash({"keyframes": before})  # as before the switch existed
    pixel = settings.replace(keyframes={"extractor": "pixel"})
    assert pixel.section_hash("keyframes") != settings.section_hash("keyframes")
    assert output_knobs(pixel.keyframes)["extractor"] == "pixel"
