"""Write the dataset: finished videos packed into interleaved samples, plus records and a card.

``export_dataset`` reads only the database and the store, and writes into ``settings.export_root``
(FORMAT.md): ``obelics/`` shards, the ``clips/`` view, ``videos.jsonl``, the keyframes under
``images/`` and the ``README.md`` card. Re-running it on the same input writes the same bytes, and
it removes what an earlier export left that this one did not write. It refuses to publish a dataset
that lost videos the previous one shipped (``PublishRefused``), and says whether anything changed.
``validate_dataset`` checks a written dataset against every invariant of FORMAT.md. An ``s3://`` export.root is written locally
the same way, then mirrored to S3 (remote.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from textbook.config import ExportSettings
from textbook.export.card import SampleFacts, render_card
from textbook.export.clipview import FOLDER as CLIPS_FOLDER
from textbook.export.clipview import write_clip_view
from textbook.export.files import DatasetWriter, jsonl
from textbook.export.interleave import ClipItem, Entry
from textbook.export.obelics import FOLDER as OBELICS_FOLDER
from textbook.export.obelics import SINGLE_JSON, obelics_sample, write_obelics
from textbook.export.packing import Sample, order_samples, pack
from textbook.export.remote import SyncSummary, remote_target, sync_to_s3
from textbook.tokens import count_tokens
from textbook.export.validate import validate_dataset
from textbook.export.wds import write_wds_view
from textbook.export.videos import KnowledgePoint, VideoEntry, load_videos, video_record
from textbook.store import ArtifactStore, LocalStore

if TYPE_CHECKING:
    from textbook.context import Context

__all__ = ["ExportSummary", "PublishRefused", "export_dataset", "validate_dataset"]

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


def _reading_order(curriculum: bool) -> Callable[[VideoEntry], tuple]:
    def key(entry: VideoEntry) -> tuple:
        kp = entry.knowledge_point
        by_kp = (kp.id if kp else "", entry.video_id)
        return ((kp.level if kp else 0), *by_kp) if curriculum else by_kp

    return key


def _named_knowledge_points(ctx: Context, kp_ids: Sequence[str]) -> list[KnowledgePoint]:
    kps = []
    for kp_id in sorted(set(kp_ids)):
        row = ctx.db.knowledge_point(kp_id)
        if row is None:
            raise ValueError(f"unknown knowledge point {kp_id!r}: not in the database")
        kps.append(KnowledgePoint(row.id, row.subject, row.course, row.sub_course, row.name, int(row.level or 0)))
    return kps


def _linked_knowledge_points(entries: list[VideoEntry]) -> list[KnowledgePoint]:
    found = {kp.id: kp for e in entries for kp in e.knowledge_points}
    return [found[k] for k in sorted(found)]


def _packed_samples(entries: list[VideoEntry], exp: ExportSettings) -> list[Sample]:
    """Pack the finished videos in reading order; marks each as exported, or says why not."""
    ready = []
    for entry in entries:
        if entry.status == "done" and entry.clips is not None:
            if entry.clips:
                ready.append(entry)
            else:
                entry.export_error = "finished video has no clips"
    ready.sort(key=_reading_order(exp.curriculum))
    end_cost = count_tokens(exp.end_of_video)

    def cost(e: Entry) -> int:
        return e.cost(exp.image_tokens) if isinstance(e, ClipItem) else end_cost

    packing = pack([e.clips for e in ready], exp.token_budget, cost)
    unplaced = {e.video_id for e in packing.unplaced}
    for entry in ready:
        if entry.video_id in unplaced:
            entry.export_error = "no sample can take its text: no exported video has a kept keyframe"
        else:
            entry.exported = True
    return order_samples(packing.samples, exp.seed, exp.curriculum)


def _copy_images(writer: DatasetWriter, store: ArtifactStore, entries: list[VideoEntry], sampled_frames: bool) -> int:
    """Every keyframe of the exported videos (the clip view shows the visually dropped ones too)."""
    images = 0
    for entry in entries:
        if not entry.exported:
            continue
        for clip in entry.clips or []:
            for frame in clip.frames:
                writer.copy_artifact(store, frame.source_key, frame.path)
                images += 1
            if sampled_frames:
                for frame in clip.sampled:
                    writer.copy_artifact(store, frame.source_key, frame.path)
    return images


def export_dataset(ctx: Context, kp_ids: list[str] | None = None, *, force: bool = False) -> ExportSummary:
    """Export the videos found by ``kp_ids`` (default: every video) into ``settings.export_root``.

    One export at a time per data root (two DAGs packing at once would remove each other's files);
    across machines the Airflow pool ``dags.pack_pool`` serialises them. Artifacts that newer
    published results superseded are deleted first, here, where no export is reading them.
    ``force`` publishes even when videos the previous export shipped would be lost.
    """
    ctx.settings.data_path.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.data_path / "export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        collect_garbage(ctx)
        return _export_dataset(ctx, kp_ids, force)


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
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("exported"):
                shipped.add(record["video_id"])
    return shipped


def _refuse_losses(root: Path, entries: list[VideoEntry], max_share: float, sliced: bool) -> None:
    """Refuse an export that drops shipped videos nobody removed on purpose (a filter that now drops
    a video is on purpose, and so is leaving a video out of a slice; a video whose documents went
    missing is not)."""
    before = previously_shipped(root)
    if sliced:
        before &= {e.video_id for e in entries}
    if not before:
        return
    kept = {e.video_id for e in entries if e.exported or e.status == "filtered"}
    lost = sorted(before - kept)
    if lost and len(lost) > max_share * len(before):
        why = {e.video_id: e.export_error or e.status for e in entries}
        shown = ", ".join(f"{v} ({why.get(v, 'no longer in the database')})" for v in lost[:10])
        raise PublishRefused(
            f"export refused: {len(lost)} of the {len(before)} videos the dataset in {root} ships would be lost "
            f"({shown}{' and more' if len(lost) > 10 else ''}); the dataset was left as it was. Fix the cause, "
            f"or publish anyway with --force (export.max_lost_share allows a share of losses)")


def _export_dataset(ctx: Context, kp_ids: list[str] | None, force: bool) -> ExportSummary:
    settings = ctx.settings
    exp = settings.export
    root = settings.export_root
    _check_root_apart_from_store(root, ctx.store)
    target = remote_target(settings, ctx.store)
    named = _named_knowledge_points(ctx, kp_ids) if kp_ids is not None else None
    entries = load_videos(ctx, kp_ids)
    kps = named if named is not None else _linked_knowledge_points(entries)
    samples = _packed_samples(entries, exp)
    if not force:
        _refuse_losses(root, entries, exp.max_lost_share, sliced=kp_ids is not None)

    root.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(root)

    def path(rel: str) -> str:
        return (root / rel).as_posix() if exp.absolute_paths else rel

    images = _copy_images(writer, ctx.store, entries, exp.sampled_frames)
    rows = [obelics_sample(s, end_of_video=exp.end_of_video, image_tokens=exp.image_tokens, image_path=path)
            for s in samples]
    shards = write_obelics(writer, rows, exp.shard_size, exp.single_json)
    write_clip_view(writer, samples, exp, path, settings.ocr.backend)
    write_wds_view(writer, samples, exp)
    writer.write_bytes("videos.jsonl", jsonl(video_record(e, exp.image_tokens) for e in entries))

    subject = {e.video_id: e.subject for e in entries}
    facts = [SampleFacts(frozenset(subject[m["video_id"]] for m in row["metadata"]), row["image_num"], row["text_num"])
             for row in rows]
    used = ctx.db.stage_settings(r.config_hash for e in entries if e.exported for r in e.runs)
    card = render_card(settings=settings, kps=kps, entries=entries, samples=facts, shards=shards, images=images,
                       stage_settings=used)
    writer.write_bytes("README.md", card.encode())
    writer.remove_stale()

    paths = {"root": root, "obelics": root / OBELICS_FOLDER, "clips": root / CLIPS_FOLDER,
             "length": root / OBELICS_FOLDER / "length.json",
             "shard_id_range": root / OBELICS_FOLDER / "shard_id_range.json",
             "videos": root / "videos.jsonl", "card": root / "README.md"}
    if exp.single_json:
        paths["single_json"] = root / SINGLE_JSON
    remote = sync_to_s3(root, target, settings, ctx.store) if target else None
    return ExportSummary(root=root, samples=len(rows), videos=sum(e.exported for e in entries), records=len(entries),
                         images=images, shards=len(shards), paths=paths, remote=remote,
                         changed=tuple(writer.changed))
