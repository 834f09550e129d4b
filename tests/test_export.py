"""The exporter: FORMAT.md invariants, packing, records, determinism, options, and the validator."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pytest
from sqlalchemy import update

from export_helpers import (ClipSpec, add_done_video, add_failed_video, add_filtered_video, add_knowledge_point,
                            clip_samples, make_context, obelics_samples, read_jsonl, register, snapshot, with_export)
from textbook import __version__, keys
from textbook.artifacts import input_key, output_key
from textbook.export import export_dataset, validate_dataset
from textbook.records import Verdict
from textbook.state import VideoRow

EOV = "<|end_of_video|>"


def _texts(sample):
    return [t for t in sample["texts"] if t is not None]


def _small_world(tmp_path, **export):
    """Two finished videos in two subjects, plus a filtered, a failed and an unfinished one."""
    ctx = make_context(tmp_path, **{"image_tokens": 10, "token_budget": 1000, **export})
    add_knowledge_point(ctx, "math-1", "Mathematics", level=2)
    add_knowledge_point(ctx, "phys-1", "Physics", level=1)
    add_done_video(ctx, "vidA", "math-1", [
        ClipSpec(0.0, 15.0, "one two three", refined="One, two, three.", keyframes=2, ocr=("x = 1", "x = 1\ny = 2")),
        ClipSpec(15.0, 30.0, "four five", keyframes=1, visual_kept=False, ocr=("FACE CAPTION",)),
        ClipSpec(30.0, 45.0, "six seven", keyframes=1, ocr=("",)),
    ])
    add_done_video(ctx, "-vidB_2", "phys-1", [
        ClipSpec(0.0, 12.5, "force equals mass times acceleration", keyframes=1, ocr=("F = ma",)),
        ClipSpec(12.5, 25.0, "so the unit is newton", keyframes=2),
    ], transcript_source="faster_whisper")
    add_filtered_video(ctx, "vidF", "math-1", Verdict("too_short", False, 4.0, "duration 4.0 s under 10 s"))
    add_failed_video(ctx, "vidX", "phys-1")
    register(ctx, "vidN", "math-1")
    return ctx


def test_export_writes_a_valid_dataset_with_every_video_recorded(tmp_path):
    ctx = _small_world(tmp_path)
    summary = export_dataset(ctx)
    root = summary.root
    assert validate_dataset(root) == []
    assert (summary.samples, summary.videos, summary.records, summary.shards) == (1, 2, 5, 1)
    assert summary.images == 4 + 3  # every SSIM keyframe, the visually dropped one included
    for name in ("obelics/part-00000.jsonl", "obelics/length.json", "obelics/shard_id_range.json",
                 "clips/part-00000.jsonl", "videos.jsonl", "README.md"):
        assert (root / name).is_file(), name
    assert json.loads((root / "obelics/length.json").read_text()) == {"part-00000.jsonl": 1}
    assert json.loads((root / "obelics/shard_id_range.json").read_text()) == {"part-00000.jsonl": [0, 1]}
    assert (root / keys.keyframe("-vidB_2", 12.5, 25.0, 2)).is_file()

    [sample] = obelics_samples(root)
    # knowledge point order: math-1 (vidA) before phys-1 (-vidB_2), each closed by End-of-Video
    assert _texts(sample) == ["One, two, three.", "four five", "six seven", EOV,
                              "force equals mass times acceleration", "so the unit is newton", EOV]
    assert sample["images"][:2] == ["images/vidA/vidA@0.0_15.0#1.jpg", "images/vidA/vidA@0.0_15.0#2.jpg"]
    assert sample["image_num"] == 6
    assert sample["text_num"] == 6 + 2 + 2 + 5 + 5
    assert sample["token_num"] == sample["text_num"] + 2 * 5 + 6 * 10
    i = sample["texts"].index("One, two, three.")
    assert sample["text_ocr_list"][i] == "One, two, three.\nx = 1\ny = 2"
    assert sample["metadata"][i] == {"video_id": "vidA", "clip_start": 0.0, "clip_end": 15.0, "kind": "text",
                                     "knowledge_point": "math-1"}
    eov = sample["texts"].index(EOV)
    assert sample["metadata"][eov]["video_id"] == "vidA" and sample["metadata"][eov + 1]["video_id"] == "-vidB_2"


def test_a_clip_whose_visuals_were_dropped_keeps_its_text(tmp_path):
    root = export_dataset(_small_world(tmp_path)).root
    [sample] = obelics_samples(root)
    assert not any(p and "@15.0_30.0" in p for p in sample["images"])
    i = sample["texts"].index("four five")
    assert sample["images"][i - 1] is None  # the previous clip's text, not an image of this clip
    assert sample["text_ocr_list"][i] == "four five"  # OCR of dropped keyframes is dropped too
    [clips] = clip_samples(root)
    dropped = next(c for c in clips["conversations"] if c["vid"] == "vidA" and c["clip_start"] == 15.0)
    assert dropped["visual_kept"] is False and dropped["image_tokens"] == 0
    assert dropped["keyframe_ssim"] == []  # a trainer reading keyframe_ssim never sees a dropped image
    assert dropped["keyframe_ssim_dropped"] == ["images/vidA/vidA@15.0_30.0#1.jpg"]
    assert dropped["ocr"] == ["FACE CAPTION"] and dropped["ocr_image"] == dropped["keyframe_ssim_dropped"]
    assert (root / dropped["keyframe_ssim_dropped"][0]).is_file()
    assert "ocr_qwen2_vl_72b" not in dropped and dropped["ocr_engine"] == "tesseract"
    first = clips["conversations"][0]
    assert first["asr"] == "one two three" and first["refined_asr"] == "One, two, three."
    assert first["extracted_frames"] == []  # sampled frames are not shipped by default: no dangling paths
    assert first["token_num"] == first["image_tokens"] + first["asr_token_num"] == 2 * 10 + 6
    assert {"vid": "End of a Video", "image_tokens": 0, "token_num": 0} in clips["conversations"]
    assert clips["token_num"] == sum(c["token_num"] for c in clips["conversations"])


def test_every_video_has_a_record_with_its_verdicts_and_reasons(tmp_path):
    root = export_dataset(_small_world(tmp_path)).root
    records = {r["video_id"]: r for r in read_jsonl(root / "videos.jsonl")}
    assert sorted(records) == sorted(["vidA", "-vidB_2", "vidF", "vidX", "vidN"])
    a = records["vidA"]
    assert a["status"] == "done" and a["exported"] is True and a["export_error"] == ""
    assert a["knowledge_point"]["id"] == "math-1"
    assert a["knowledge_point"]["path"] == "Mathematics / Mathematics course / Basics / Point math-1"
    assert a["transcript_source"] == "captions" and records["-vidB_2"]["transcript_source"] == "faster_whisper"
    assert a["counts"] == {"clips": 3, "keyframes": 4, "images": 3, "visual_dropped_clips": 1,
                           "transcript_tokens": 10, "ocr_tokens": 6, "tokens": 10 + 30}
    assert {v["name"] for v in a["verdicts"]} == {"too_short", "silent", "not_english", "repetitive"}
    assert (a["title"], a["channel"], a["license"], a["duration"]) == ("Lesson vidA", "Teacher", "cc-by", 60.0)
    f = records["vidF"]
    assert f["status"] == "filtered" and f["reason"].startswith("too_short") and f["filtered_by"] == "filters"
    assert {"name": "too_short", "passed": False, "score": 4.0, "reason": "duration 4.0 s under 10 s"} in f["verdicts"]
    assert f["exported"] is False and f["counts"]["clips"] is None
    x = records["vidX"]
    assert x["status"] == "failed" and x["failed_stage"] == "download" and "403" in x["error"]
    assert records["vidN"]["status"] == "new" and records["vidN"]["verdicts"] == []


def test_card_states_funnel_statistics_config_and_dates_from_the_database(tmp_path):
    ctx = _small_world(tmp_path)
    with ctx.db.session() as s:
        s.execute(update(VideoRow).values(created_at=datetime(2024, 3, 1, 12, 0)))
    card = (export_dataset(ctx).root / "README.md").read_text()
    assert "Videos found between 2024-03-01 and 2024-03-01" in card
    assert f"`textbook` {__version__}" in card
    assert "| filtered at filters | too_short | 1 |" in card
    assert "| failed at download | DownloadError | 1 |" in card
    assert "| not finished | new | 1 |" in card
    assert "| found by search | 5 |" in card and "| exported | 2 |" in card
    assert "| Mathematics | 1 | 0.02 | 3 | 3 | 10 | 6 | 1 | 6 / 6 / 6.0 | 20 / 20 / 20.0 |" in card
    assert "| **Overall** | 2 | 0.03 | 5 | 6 | 20 | 9 | 1 |" in card
    assert "Each image counts as 10 tokens" in card and "token_budget: 1000" in card
    assert "configs:" in card and "obelics/part-*.jsonl" in card


def test_videos_pack_across_samples_and_a_too_long_video_is_split_at_clip_boundaries(tmp_path):
    # each clip: 1 image (10 tokens) + 5 words; End-of-Video "<|end_of_video|>" is 5 tokens
    ctx = make_context(tmp_path, image_tokens=10, token_budget=40, curriculum=True)
    add_knowledge_point(ctx, "kp-a")
    words = "alpha beta gamma delta epsilon"
    add_done_video(ctx, "long", "kp-a", [ClipSpec(15.0 * i, 15.0 * (i + 1), f"{words}") for i in range(5)])
    add_done_video(ctx, "short", "kp-a", [ClipSpec(0.0, 10.0, words)])
    summary = export_dataset(ctx)
    assert validate_dataset(summary.root) == []
    samples = obelics_samples(summary.root)
    starts = [[m["clip_start"] for m, t in zip(s["metadata"], s["texts"], strict=True)
               if t is not None and m["video_id"] == "long"] for s in samples]
    assert starts == [[0.0, 15.0], [30.0, 45.0], [60.0, None]]  # None: End-of-Video, only after the last piece
    assert [s["token_num"] for s in samples] == [30, 30, 20 + 20]  # "short" fills the room left by the last piece
    assert _texts(samples[2])[-3:] == [EOV, words, EOV]
    assert all(s["token_num"] <= 40 for s in samples)


def test_a_piece_without_images_is_merged_into_its_neighbour(tmp_path):
    ctx = make_context(tmp_path, image_tokens=10, token_budget=40, curriculum=True)
    add_knowledge_point(ctx, "kp-a")
    twenty = " ".join(f"w{i}" for i in range(20))
    add_done_video(ctx, "talky", "kp-a", [ClipSpec(0.0, 10.0, "a b c d e"), ClipSpec(10.0, 20.0, twenty, keyframes=0),
                                          ClipSpec(20.0, 30.0, twenty, keyframes=0)])
    root = export_dataset(ctx).root
    assert validate_dataset(root) == []
    [sample] = obelics_samples(root)  # [clip0, clip1] then [clip2, EOV] has no image: merged, over budget
    assert _texts(sample) == ["a b c d e", twenty, twenty, EOV]
    assert sample["token_num"] == 15 + 20 + 20 + 5


def test_without_any_kept_image_nothing_is_written_and_records_say_why(tmp_path):
    ctx = make_context(tmp_path)
    add_knowledge_point(ctx, "kp-a")
    add_done_video(ctx, "faces", "kp-a", [ClipSpec(0.0, 10.0, "hello there", visual_kept=False)])
    summary = export_dataset(ctx)
    assert summary.samples == 0 and summary.images == 0
    assert validate_dataset(summary.root) == []
    [record] = read_jsonl(summary.root / "videos.jsonl")
    assert record["exported"] is False and "no exported video has a kept keyframe" in record["export_error"]


def test_a_finished_video_with_a_missing_keyframe_is_recorded_not_exported(tmp_path):
    ctx = _small_world(tmp_path)
    ctx.store.delete(output_key(ctx, "vidA", "keyframes", keys.keyframe_name("vidA", 30.0, 45.0, 1)))
    summary = export_dataset(ctx)
    assert validate_dataset(summary.root) == []
    assert summary.videos == 1
    records = {r["video_id"]: r for r in read_jsonl(summary.root / "videos.jsonl")}
    assert records["vidA"]["exported"] is False and "vidA@30.0_45.0#1.jpg" in records["vidA"]["export_error"]
    assert {m["video_id"] for s in obelics_samples(summary.root) for m in s["metadata"]} == {"-vidB_2"}
    assert not (summary.root / "images" / "vidA").exists()


def test_reexport_is_byte_identical_and_removes_stale_files(tmp_path):
    ctx = _small_world(tmp_path, token_budget=60)
    root = export_dataset(ctx).root
    first = snapshot(root)
    assert len([k for k in first if k.startswith("obelics/part-")]) == 1
    (root / "obelics/part-00007.jsonl").write_text("{}\n")
    (root / "images/ghost").mkdir()
    (root / "images/ghost/ghost@0.0_1.0#1.jpg").write_bytes(b"x")
    (root / "multimodal_textbook.json").write_text("[]")
    (root / "notes.txt").write_text("not the exporter's")
    export_dataset(ctx)
    assert snapshot(root) == {**first, "notes.txt": b"not the exporter's"}
    export_dataset(with_export(ctx, shard_size=1))
    assert len(list((root / "obelics").glob("part-*.jsonl"))) > 1
    assert validate_dataset(root) == []
    export_dataset(ctx)
    assert snapshot(root) == {**first, "notes.txt": b"not the exporter's"}


def _order(root):
    return [next(m["video_id"] for m in s["metadata"]) for s in obelics_samples(root)]


def test_samples_are_shuffled_by_seed_or_kept_in_curriculum_order(tmp_path):
    ctx = make_context(tmp_path, image_tokens=10, token_budget=30)  # one video per sample
    for n, level in enumerate((3, 1, 2, 1, 3, 2)):
        add_knowledge_point(ctx, f"kp-{n}", level=level)
        add_done_video(ctx, f"v{n}", f"kp-{n}", [ClipSpec(0.0, 10.0, "a b c d e")])
    seed1 = _order(export_dataset(with_export(ctx, seed=1)).root)
    assert sorted(seed1) == [f"v{n}" for n in range(6)]
    assert _order(export_dataset(with_export(ctx, seed=1)).root) == seed1
    seed2 = _order(export_dataset(with_export(ctx, seed=2)).root)
    assert seed2 != seed1 and sorted(seed2) == sorted(seed1)
    curriculum = _order(export_dataset(with_export(ctx, curriculum=True)).root)
    assert curriculum == ["v1", "v3", "v2", "v5", "v0", "v4"]  # level, then knowledge point


def test_absolute_paths_option(tmp_path):
    summary = export_dataset(_small_world(tmp_path, absolute_paths=True))
    assert validate_dataset(summary.root) == []
    [sample] = obelics_samples(summary.root)
    images = [p for p in sample["images"] if p is not None]
    assert images and all(p.startswith(summary.root.as_posix() + "/images/") for p in images)
    [clips] = clip_samples(summary.root)
    assert clips["conversations"][0]["keyframe_ssim"][0].startswith(summary.root.as_posix())


def test_single_json_option_and_its_removal(tmp_path):
    ctx = _small_world(tmp_path, single_json=True, token_budget=60)
    summary = export_dataset(ctx)
    assert validate_dataset(summary.root) == []
    whole = json.loads(summary.paths["single_json"].read_text())
    assert whole == obelics_samples(summary.root) and len(whole) == summary.samples > 1
    export_dataset(with_export(ctx, single_json=False))
    assert not (summary.root / "multimodal_textbook.json").exists()


def test_sampled_frames_option_ships_the_frames_ssim_compared(tmp_path):
    summary = export_dataset(_small_world(tmp_path, sampled_frames=True))
    assert validate_dataset(summary.root) == []
    frame = keys.sampled_frame_path("-vidB_2", keys.sampled_frame_name("-vidB_2", 12.5, 25.0, 2))
    assert (summary.root / frame).is_file()
    listed = [p for s in clip_samples(summary.root) for c in s["conversations"] for p in c.get("extracted_frames", [])]
    assert frame in listed and all((summary.root / p).is_file() for p in listed)
    (summary.root / frame).unlink()
    assert any("sampled frame" in p for p in validate_dataset(summary.root))


def test_export_of_a_knowledge_point_slice(tmp_path):
    summary = export_dataset(_small_world(tmp_path), kp_ids=["phys-1"])
    assert validate_dataset(summary.root) == []
    assert sorted(r["video_id"] for r in read_jsonl(summary.root / "videos.jsonl")) == ["-vidB_2", "vidX"]
    assert "| Physics | Physics course | Basics | 1 | 2 | 1 |" in (summary.root / "README.md").read_text()


def _broken(root, tmp_path, name, change):
    copy = tmp_path / name
    shutil.copytree(root, copy)
    change(copy)
    return validate_dataset(copy)


def _edit_sample(fn):
    def change(root):
        path = root / "obelics/part-00000.jsonl"
        sample = json.loads(path.read_text())
        fn(sample)
        path.write_text(json.dumps(sample) + "\n")
    return change


def test_validate_dataset_catches_broken_datasets(tmp_path):
    root = export_dataset(_small_world(tmp_path)).root
    assert validate_dataset(root) == []

    def drop_eov(s):
        i = s["texts"].index(EOV)
        for field in ("images", "texts", "text_ocr_list", "metadata"):
            del s[field][i]
        s["token_num"] -= 5

    def both_set(s):
        s["texts"][0] = "text at an image position"

    def no_images(s):
        for i, img in enumerate(s["images"]):
            if img is not None:
                s["images"][i], s["texts"][i], s["text_ocr_list"][i] = None, "x", "x"
                s["metadata"][i]["kind"] = "text"

    def bad_name(s):
        s["images"][0] = "images/vidA/frame1.jpg"

    def wrong_count(s):
        s["image_num"] += 1

    def short_metadata(s):
        s["metadata"].pop()

    cases = {
        "missing_image": (lambda r: (r / "images/vidA/vidA@0.0_15.0#2.jpg").unlink(), "does not exist"),
        "no_eov": (_edit_sample(drop_eov), "ends without an End-of-Video"),
        "both_set": (_edit_sample(both_set), "exactly one of images/texts"),
        "no_images": (_edit_sample(no_images), "no image"),
        "bad_name": (_edit_sample(bad_name), "does not follow images/"),
        "wrong_count": (_edit_sample(wrong_count), "image_num"),
        "short_metadata": (_edit_sample(short_metadata), "lengths differ"),
        "length_json": (lambda r: (r / "obelics/length.json").write_text('{"part-00000.jsonl": 3}'), "length.json"),
        "range_json": (lambda r: (r / "obelics/shard_id_range.json").write_text('{"part-00000.jsonl": [1, 2]}'),
                       "shard_id_range.json"),
        "no_record": (lambda r: (r / "videos.jsonl").write_text(
            "\n".join(line for line in (r / "videos.jsonl").read_text().splitlines() if '"vidA"' not in line)),
            "has no record"),
        "eov_spelling": (lambda r: (r / "clips/part-00000.jsonl").write_text(
            (r / "clips/part-00000.jsonl").read_text().replace('"End of a Video", "image_tokens": 0',
                                                               '"End of a Video", "image_tokens": 1')),
            "End-of-Video pseudo-clip"),
        "no_card": (lambda r: (r / "README.md").unlink(), "README.md"),
    }
    for name, (change, expected) in cases.items():
        problems = _broken(root, tmp_path, name, change)
        assert any(expected in p for p in problems), (name, problems)


def test_export_refuses_a_dataset_folder_inside_the_artifact_store(tmp_path):
    ctx = _small_world(tmp_path)
    inside = with_export(ctx, root=str(ctx.settings.artifact_root / "dataset"))
    with pytest.raises(ValueError, match="inside the artifact store"):
        export_dataset(inside)
    assert ctx.store.exists(output_key(ctx, "vidA", "keyframes", keys.keyframe_name("vidA", 0.0, 15.0, 1)))


@pytest.mark.parametrize("break_it, expected", [
    (lambda ctx: ctx.store.delete(input_key(ctx, "vidA", "ocr", "ocr.json")), "ocr.json"),
    (lambda ctx: ctx.store.put_json(input_key(ctx, "vidA", "keyframes", "keyframes.json"), {"clips": [
        {"clip_index": 9, "sampled": [], "keyframes": []}]}), "names clip(s) [9]"),
    (lambda ctx: ctx.store.put_bytes(input_key(ctx, "vidA", "clips", "clips.json"), b"{not json"), "not valid JSON"),
])
def test_a_finished_video_with_broken_documents_is_recorded_not_exported(tmp_path, break_it, expected):
    ctx = _small_world(tmp_path)
    break_it(ctx)
    summary = export_dataset(ctx)
    assert validate_dataset(summary.root) == [] and summary.videos == 1
    records = {r["video_id"]: r for r in read_jsonl(summary.root / "videos.jsonl")}
    assert records["vidA"]["exported"] is False and expected in records["vidA"]["export_error"]
    card = (summary.root / "README.md").read_text()
    assert "| finished, not exported | see export_error in videos.jsonl | 1 |" in card


def test_an_unknown_knowledge_point_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="unknown knowledge point 'chem-9'"):
        export_dataset(_small_world(tmp_path), kp_ids=["chem-9"])


def test_concurrent_exports_of_one_data_root_do_not_interleave(tmp_path):
    import threading

    ctx = _small_world(tmp_path)
    errors: list[BaseException] = []

    def export() -> None:
        try:
            export_dataset(ctx)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=export) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert validate_dataset(ctx.settings.export_root) == []
