"""Incremental packs and compaction: a knowledge point's pack rebuilds only its changed videos'
parts, and the compacted dataset equals a full export of the same videos byte for byte."""

from __future__ import annotations

from export_helpers import (ClipSpec, add_done_video, add_filtered_video, add_knowledge_point, make_context,
                            register, snapshot, two_judges, with_export)
from textbook.artifacts import find_key
from textbook.context import Context
from textbook.export import compact, export_dataset, pack_knowledge_point, validate_dataset
from textbook.records import Verdict


def _lecture(name: str, n: int = 3, keyframes: int = 2) -> list[ClipSpec]:
    return [ClipSpec(15.0 * i, 15.0 * (i + 1), f"{name} part {i} says something about the topic",
                     keyframes=keyframes, ocr=tuple(f"{name} slide {i}.{k}" for k in range(keyframes)))
            for i in range(n)]


def _rerun(ctx: Context) -> Context:
    """Settings that change every stage's fingerprint: a new download height, and a listing rule
    for the metadata stage before it."""
    return Context(settings=ctx.settings.replace(download={"max_height": 480}, search={"min_duration": 9.0}),
                   store=ctx.store, db=ctx.db)


def _world(tmp_path):
    ctx = make_context(tmp_path, image_tokens=10, token_budget=120, shard_size=2, wds_shard_size=2)
    add_knowledge_point(ctx, "math-1", "Mathematics", level=2)
    add_knowledge_point(ctx, "math-2", "Mathematics", level=1)
    add_knowledge_point(ctx, "phys-1", "Physics", level=1)
    add_done_video(ctx, "a1", "math-1", _lecture("a1"), scoring=two_judges())
    add_done_video(ctx, "a2", "math-1", _lecture("a2", n=5))
    add_done_video(ctx, "b1", "math-2", _lecture("b1"))
    add_filtered_video(ctx, "b2", "math-2", Verdict("too_short", False, 4.0, "duration 4.0 s under 10 s"))
    add_done_video(ctx, "-p1", "phys-1", _lecture("p1", n=2))
    return ctx


def _images(changed: tuple[str, ...]) -> set[str]:
    """The videos whose keyframes a compaction wrote or removed."""
    return {path.split("/")[1] for path in changed if path.startswith("images/")}


def test_nightly_packs_and_compactions_equal_a_full_export_byte_for_byte(tmp_path):
    ctx = _world(tmp_path)
    for kp in ("math-1", "math-2", "phys-1"):
        assert pack_knowledge_point(ctx, kp).rebuilt > 0
    first = compact(ctx)
    assert validate_dataset(first.root) == [] and first.videos == 4 and first.records == 5
    assert _images(first.changed) == {"a1", "a2", "b1", "-p1"}

    # The next night: math-1 finds a new video and one the physics point had; b1 is re-run with
    # other settings (new keyframes under a new fingerprint); phys-1 has nothing new.
    add_done_video(ctx, "a3", "math-1", _lecture("a3", n=2))
    register(ctx, "-p1", "math-1")
    add_done_video(_rerun(ctx), "b1", "math-2", _lecture("b1 again", n=4, keyframes=1))
    old_b1 = ctx.db.current_parts(["math-2"])
    night = {kp: pack_knowledge_point(ctx, kp) for kp in ("math-1", "math-2", "phys-1")}
    assert (night["math-1"].videos, night["math-1"].rebuilt) == (4, 2)  # a3, and -p1 whose links changed
    assert (night["math-2"].videos, night["math-2"].rebuilt) == (2, 1)
    assert (night["phys-1"].videos, night["phys-1"].rebuilt) == (1, 0)  # -p1 is math-1's pack's already
    assert pack_knowledge_point(ctx, "math-1").rebuilt == 0  # nothing changed since: nothing is read again
    second = compact(ctx)
    assert validate_dataset(second.root) == []
    assert _images(second.changed) == {"a3", "b1"}  # unchanged videos' keyframes are not copied again
    old_key = next(key for vid, key, _, _ in old_b1 if vid == "b1")
    assert not ctx.store.exists(old_key)  # the part b1 replaced was deleted under the compaction's lock

    full = export_dataset(with_export(ctx, root=str(tmp_path / "full")))
    assert full.root != second.root and validate_dataset(full.root) == []
    assert snapshot(full.root) == snapshot(second.root)
    assert compact(ctx).changed == ()  # and compacting again changes nothing


def test_compaction_packs_videos_whose_pack_did_not_run(tmp_path):
    ctx = _world(tmp_path)
    compact(ctx)  # no pack ran at all: every video is packed by the compaction
    add_done_video(ctx, "c1", "phys-1", _lecture("c1"))
    summary = compact(ctx)
    assert summary.videos == 5 and _images(summary.changed) == {"c1"}
    full = export_dataset(with_export(ctx, root=str(tmp_path / "full")))
    assert snapshot(full.root) == snapshot(summary.root)


def test_a_slice_compaction_holds_only_its_knowledge_points(tmp_path):
    ctx = _world(tmp_path)
    sliced = with_export(ctx, root=str(tmp_path / "slice"))
    summary = compact(sliced, ["math-2"])
    assert (summary.videos, summary.records) == (1, 2)
    assert validate_dataset(summary.root) == []
    assert snapshot(export_dataset(with_export(ctx, root=str(tmp_path / "slice-full")), ["math-2"]).root) \
        == snapshot(summary.root)


def test_a_part_lost_from_the_store_is_packed_again(tmp_path):
    ctx = _world(tmp_path)
    before = snapshot(compact(ctx).root)
    key = ctx.db.part_key("a1")
    ctx.store.delete(key)
    assert snapshot(compact(ctx).root) == before and ctx.store.exists(ctx.db.part_key("a1"))


def test_keyframes_are_hard_links_into_the_store_or_copies_where_links_fail(tmp_path, monkeypatch):
    import os

    ctx = _world(tmp_path)
    root = compact(ctx).root
    shipped = root / "images" / "a1" / "a1@0.0_15.0#1.jpg"
    stored = ctx.store.path(find_key(ctx.db.run("a1", "keyframes").artifacts, "a1@0.0_15.0#1.jpg"))
    assert os.path.samefile(shipped, stored)  # no bytes copied
    linked = snapshot(root)

    def no_links(*_args, **_kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copied = export_dataset(with_export(ctx, root=str(tmp_path / "copied"))).root
    assert not os.path.samefile(copied / "images" / "a1" / "a1@0.0_15.0#1.jpg", stored)
    assert snapshot(copied) == linked
