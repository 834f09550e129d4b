"""Publishing the dataset from the parts: compaction, full export, garbage collection, refusal to
lose shipped videos (the package's ``compact``, ``export_dataset`` and friends)."""

from __future__ import annotations

import fcntl
import json
import logging
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from textbook.config import ExportSettings
from textbook.export.card import render_card
from textbook.export.clipview import FOLDER as CLIPS_FOLDER
from textbook.export.compaction import TIMINGS, Pass, exported, first_pass, read_manifest, video_lines, write_manifest
from textbook.export.files import DatasetWriter, dumps
from textbook.export.obelics import FOLDER as OBELICS_FOLDER
from textbook.export.obelics import SINGLE_JSON, ObelicsView
from textbook.export.packing import sample_order
from textbook.export.parts import PackSummary, pack_knowledge_point, refresh_parts
from textbook.export.remote import SyncSummary, remote_target, sync_to_s3
from textbook.export.validate import validate_dataset
from textbook.export.videos import KnowledgePoint, knowledge_point_of
from textbook.export.views import View, registered
from textbook.store import ArtifactStore, LocalStore

if TYPE_CHECKING:
    from textbook.context import Context

__all__ = ["ExportSummary", "PackSummary", "PublishRefused", "compact", "export_dataset", "pack_knowledge_point",
           "validate_dataset"]

log = logging.getLogger(__name__)


class PublishRefused(RuntimeError):
    """The new export would drop videos the previous one shipped; nothing was written."""


@dataclass(frozen=True)
class ExportSummary:
    root: Path
    samples: int
    videos: int  # videos whose clips are in the samples
    records: int  # lines of videos.jsonl: every video considered
    images: int  # keyframe files under images/
    shards: int
    paths: dict[str, Path]
    remote: SyncSummary | None = None  # the S3 mirror, when export.root is an s3:// URL
    changed: tuple[str, ...] = ()  # dataset files this export created, rewrote or removed


def _check_root_apart_from_store(root: Path, store: ArtifactStore) -> None:
    """The exporter deletes stale files under images/ and frames/: never inside the artifact store."""
    if isinstance(store, LocalStore) and (root == store.root or root.is_relative_to(store.root)):
        raise ValueError(f"export.root {root} lies inside the artifact store {store.root}: "
                         "choose a dataset folder outside it")


def _named_knowledge_points(ctx: Context, kp_ids: Sequence[str]) -> list[KnowledgePoint]:
    rows = ctx.db.knowledge_points(kp_ids)
    unknown = sorted(set(kp_ids) - set(rows))
    if unknown:
        raise ValueError(f"unknown knowledge point {unknown[0]!r}: not in the database")
    return [knowledge_point_of(rows[k]) for k in sorted(rows)]


@contextmanager
def _export_lock(ctx: Context) -> Iterator[None]:
    """One compaction at a time per data root (two at once would remove each other's files);
    across machines the Airflow pool ``dags.pack_pool`` serialises them. Artifacts that newer
    results superseded are deleted first, here, where no compaction is reading them."""
    ctx.settings.data_path.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.data_path / "export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        collect_garbage(ctx)
        yield


def export_dataset(ctx: Context, kp_ids: list[str] | None = None, *, force: bool = False) -> ExportSummary:
    """A full export of the videos found by ``kp_ids`` (default: every video): every part rebuilt
    from the database and the store, then compacted. ``force`` publishes even when videos the
    previous export shipped would be lost."""
    if kp_ids is not None:
        _named_knowledge_points(ctx, kp_ids)
    with _export_lock(ctx):
        refresh_parts(ctx, ctx.db.video_ids(kp_ids=kp_ids), rebuild=True)
        return _compact(ctx, kp_ids, force)


def compact(ctx: Context, kp_ids: list[str] | None = None, *, force: bool = False) -> ExportSummary:
    """The dataset of every video (or those ``kp_ids`` found), from their current parts. Videos
    whose knowledge point's pack did not run since they changed are packed first."""
    with _export_lock(ctx):
        refresh_parts(ctx, ctx.db.videos_to_pack(kp_ids))
        return _compact(ctx, kp_ids, force)


def collect_garbage(ctx: Context) -> int:
    """Delete superseded artifacts no stage run or published result uses any more; returns how many."""
    deleted = 0
    for video_id, superseded in ctx.db.superseded().items():
        referenced = ctx.db.referenced_keys(video_id)
        for key in superseded:
            if key not in referenced:
                ctx.store.delete(key)
                deleted += 1
        ctx.db.forget_superseded(superseded)
    return deleted


def previously_shipped(root: Path) -> set[str]:
    """The videos the dataset now in ``root`` ships (its videos.jsonl), empty when there is none."""
    path = root / "videos.jsonl"
    if not path.is_file():
        return set()
    shipped = set()
    with open(path) as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                if record.get("exported"):
                    shipped.add(record["video_id"])
    return shipped


def _refuse_losses(root: Path, first: Pass, max_share: float, sliced: bool) -> None:
    """Refuse an export that drops shipped videos nobody removed on purpose (a filter that now drops
    a video is on purpose, and so is leaving a video out of a slice; a video whose documents went
    missing is not)."""
    before = previously_shipped(root)
    if sliced:
        before &= set(first.index)
    if not before:
        return
    lost = sorted(v for v in before if not exported(first, v) and first.statuses.get(v) != "filtered")
    if lost and len(lost) > max_share * len(before):
        shown = ", ".join(f"{v} ({first.why(v)})" for v in lost[:10])
        raise PublishRefused(
            f"export refused: {len(lost)} of the {len(before)} videos the dataset in {root} ships would be lost "
            f"({shown}{' and more' if len(lost) > 10 else ''}); the dataset was left as it was. Fix the cause, "
            f"or publish anyway with --force (export.max_lost_share allows a share of losses)")


def view_card_lines(views: list[View], exp: ExportSettings) -> list[str]:
    """The card's lines for every registered view, written or turned off."""
    written = {type(v): v for v in views}
    return [line for cls in registered()
            for line in (written[cls].card() if cls in written else cls.card_when_off(exp))]


def _compact(ctx: Context, kp_ids: list[str] | None, force: bool) -> ExportSummary:
    settings = ctx.settings
    exp = settings.export
    root = settings.export_root
    _check_root_apart_from_store(root, ctx.store)
    target = remote_target(settings, ctx.store)
    named = _named_knowledge_points(ctx, kp_ids) if kp_ids is not None else None
    parts = ctx.db.current_parts(kp_ids)

    def path(rel: str) -> str:
        return (root / rel).as_posix() if exp.absolute_paths else rel

    settings.data_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.data_path, prefix="compaction-") as tmp:
        first = first_pass(ctx, parts, Path(tmp), path)
        if not force:
            _refuse_losses(root, first, exp.max_lost_share, sliced=kp_ids is not None)
        root.mkdir(parents=True, exist_ok=True)
        writer = DatasetWriter(root)
        shipped_before = read_manifest(root, exp.sampled_frames)
        shipped: dict[str, str] = {}
        images = 0

        def records() -> Iterator[bytes]:
            nonlocal images
            for line in video_lines(first):
                record, facts = line["record"], line["facts"]
                first.facts.add_video(facts, record["exported"])
                if record["exported"]:
                    vid = record["video_id"]
                    shipped[vid] = line["files_digest"]
                    images += record["counts"]["keyframes"]
                    if shipped_before.get(vid) != line["files_digest"]:
                        writer.copy_video_files(ctx.store, vid, map(tuple, line["files"]))
                timings.append((dumps({"video_id": record["video_id"], "stage_seconds": line["stage_seconds"]})
                                + "\n").encode())
                yield (dumps(record) + "\n").encode()

        timings: list[bytes] = []  # a short line per video, gathered on the same pass
        writer.write_lines("videos.jsonl", records())
        writer.write_lines(TIMINGS, timings)
        writer.remove_stale_videos(set(shipped))
        order = sample_order(first.samples, exp.seed, exp.curriculum)
        for view in first.views:
            view.write(writer, order)
        kps = named if named is not None else [first.kps[k] for k in sorted(first.kps)]
        used = ctx.db.stage_settings(sorted(first.stage_fingerprints))
        card = render_card(settings=settings, kps=kps, facts=first.facts, files=view_card_lines(first.views, exp),
                           images=images, stage_settings=used,
                           measures=[line for view in first.views for line in view.card_section()])
        shards = len(next(v for v in first.views if isinstance(v, ObelicsView)).shards)
        writer.write_bytes("README.md", card.encode())
        writer.sync()  # the keyframes are on disk before the manifest says they shipped
        write_manifest(writer, shipped, exp.sampled_frames)
        writer.remove_stale()
        first.close()

    paths = {"root": root, "obelics": root / OBELICS_FOLDER, "clips": root / CLIPS_FOLDER,
             "length": root / OBELICS_FOLDER / "length.json",
             "shard_id_range": root / OBELICS_FOLDER / "shard_id_range.json",
             "videos": root / "videos.jsonl", "card": root / "README.md"}
    if exp.single_json:
        paths["single_json"] = root / SINGLE_JSON
    remote = sync_to_s3(root, target, settings, ctx.store, writer.changed) if target else None
    return ExportSummary(root=root, samples=len(order), videos=len(shipped), records=len(first.index),
                         images=images, shards=shards, paths=paths, remote=remote,
                         changed=tuple(writer.changed))
