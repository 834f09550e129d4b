"""Compaction: the corpus's global view (FORMAT.md) assembled from the videos' parts, streaming.

Videos are read one part at a time in reading order and packed as they come; each finished
sample's rows go to spools on disk, so memory holds one video, one sample and an offset per
sample, never the corpus. Once every sample exists the seeded shuffle orders them and the shards
are written from the spools. ``videos.jsonl`` and the card's numbers follow from a second pass in
video id order over the small per-video facts the first pass kept on disk.

Keyframes are copied only for videos whose keyframes changed since the dataset's last compaction
(``.textbook/compacted.json`` in the dataset remembers which keyframes each video shipped), so a
night that changed little copies little.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from textbook.config import ExportSettings
from textbook.export.card import CorpusFacts, video_facts
from textbook.export.files import DatasetWriter, dumps
from textbook.export.interleave import ClipItem, Entry
from textbook.export.obelics import obelics_sample
from textbook.export.packing import Packer, Sample
from textbook.export.parts import entry_from_part, refresh_parts
from textbook.export.spool import Spool
from textbook.export.views import View, ViewContext, registered
from textbook.export.videos import KnowledgePoint, VideoEntry, stage_seconds, video_record
from textbook.store import MissingArtifact
from textbook.tokens import count_tokens

if TYPE_CHECKING:
    from textbook.context import Context

log = logging.getLogger(__name__)

MANIFEST = ".textbook/compacted.json"
TIMINGS = ".textbook/stage_seconds.jsonl"  # per video, seconds per stage: for the report, not data
NO_IMAGE = "no sample can take its text: no exported video has a kept keyframe"


@dataclass
class Pass:
    """What the first pass leaves for the writing: spools and the per-video facts."""

    views: list[View]  # the enabled views, fed as the stream goes
    videos: Spool  # one JSON line per video: its record (``exported`` still open), facts, files
    samples: int = 0
    index: dict[str, int] = field(default_factory=dict)  # video id -> line in ``videos``
    ready: set[str] = field(default_factory=set)  # finished videos with clips, placed in a sample
    facts: CorpusFacts = field(default_factory=CorpusFacts)
    kps: dict[str, KnowledgePoint] = field(default_factory=dict)
    stage_fingerprints: set[str] = field(default_factory=set)
    statuses: dict[str, str] = field(default_factory=dict)  # video id -> published status
    notes: dict[str, str] = field(default_factory=dict)  # video id -> why it is not exported, if it is not
    placed: bool = True  # False when no sample holds an image: then no video is exported

    def why(self, video_id: str) -> str:
        if video_id not in self.index:
            return "no longer in the database"
        return NO_IMAGE if video_id in self.ready and not self.placed else self.notes[video_id]

    def close(self) -> None:
        for view in self.views:
            view.close()
        self.videos.close()


def reading_order(parts: list[tuple[str, str, str, int]], curriculum: bool) -> list[tuple[str, str, str, int]]:
    """Knowledge point then video id, or easiest knowledge points first for a curriculum."""
    if curriculum:
        return sorted(parts, key=lambda p: (p[3], p[2], p[0]))
    return sorted(parts, key=lambda p: (p[2], p[0]))


def _cost(exp: ExportSettings) -> Callable[[Entry], int]:
    end_cost = count_tokens(exp.end_of_video)
    return lambda e: e.cost(exp.image_tokens) if isinstance(e, ClipItem) else end_cost


def _files(entry: VideoEntry, sampled_frames: bool) -> list[tuple[str, str]]:
    files = []
    for clip in entry.clips or []:
        files += [(f.source_key, f.path) for f in clip.frames]
        if sampled_frames:
            files += [(f.source_key, f.path) for f in clip.sampled]
    return files


def files_digest(files: list[tuple[str, str]]) -> str:
    """Names a video's shipped keyframes: store keys are fingerprinted outputs, which never change
    in place, so the same keys and paths mean the same bytes."""
    return hashlib.sha256(dumps(files).encode()).hexdigest()[:32]


def first_pass(ctx: Context, parts: list[tuple[str, str, str, int]], tmp: Path, path: Callable[[str], str]) -> Pass:
    """Every part in reading order: packed into samples fed to the views, its facts spooled."""
    exp = ctx.settings.export
    subjects: dict[str, str] = {}  # video id -> subject, for the card's per-subject sample counts
    vc = ViewContext(ctx.settings, ctx.store, tmp, path)
    out = Pass([view(vc) for view in registered() if view.enabled(exp)], Spool(tmp / "videos"))
    packer = Packer(exp.token_budget, _cost(exp))

    def emit(samples: Iterator[Sample]) -> None:
        for sample in samples:
            row = obelics_sample(sample, end_of_video=exp.end_of_video, image_tokens=exp.image_tokens, image_path=path)
            for view in out.views:
                view.add_sample(sample, row)
            out.samples += 1
            out.facts.add_sample((subjects[m["video_id"]] for m in row["metadata"]), row["image_num"], row["text_num"])

    for video_id, key, _, _ in reading_order(parts, exp.curriculum):
        try:
            doc = ctx.store.get_json(key)
        except MissingArtifact:  # lost from the store: built again from the video's stage outputs
            log.warning("video %s: its export part %s is missing from the store; packing it again", video_id, key)
            refresh_parts(ctx, [video_id], rebuild=True)
            key = ctx.db.part_key(video_id)
            doc = ctx.store.get_json(key)
        entry = entry_from_part(doc)
        subjects[video_id] = entry.subject
        ready = entry.status == "done" and bool(entry.clips)
        if entry.status == "done" and entry.clips == []:
            entry.export_error = "finished video has no clips"
        for view in out.views:
            view.add_video(entry, ready)
        if ready:
            out.ready.add(video_id)
            emit(packer.add(entry.clips))
        for kp in entry.knowledge_points:
            out.kps.setdefault(kp.id, kp)
        out.stage_fingerprints.update(r.config_hash for r in entry.runs)
        out.statuses[video_id] = entry.status
        out.notes[video_id] = entry.export_error or entry.status
        out.index[video_id] = len(out.videos)
        files = _files(entry, exp.sampled_frames)
        out.videos.append((dumps({"record": video_record(entry, exp.image_tokens), "facts": video_facts(entry),
                                  "files": files, "files_digest": files_digest(files),
                                  "stage_seconds": stage_seconds(entry)}) + "\n").encode())
    emit(packer.finish())
    out.placed = not packer.unplaced
    return out


def exported(first: Pass, video_id: str) -> bool:
    return first.placed and video_id in first.ready


def video_lines(first: Pass) -> Iterator[dict[str, Any]]:
    """Every video's line, in video id order, with ``exported`` settled."""
    for video_id in sorted(first.index):
        line = json.loads(first.videos.line(first.index[video_id]))
        record = line["record"]
        record["exported"] = exported(first, video_id)
        if video_id in first.ready and not record["exported"]:
            record["export_error"] = NO_IMAGE
        yield line


def read_manifest(root: Path, sampled_frames: bool) -> dict[str, str]:
    """Which keyframes each video shipped at the last compaction (``files_digest``), {} when unknown
    (then every video's are copied, or checked byte for byte where they already are)."""
    path = root / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return doc.get("videos", {}) if doc.get("sampled_frames") == sampled_frames else {}


def write_manifest(writer: DatasetWriter, shipped: dict[str, str], sampled_frames: bool) -> None:
    writer.write_bytes(MANIFEST, (dumps({"sampled_frames": sampled_frames, "videos": shipped}) + "\n").encode())
