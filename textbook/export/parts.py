"""Export parts: each video's share of the corpus as one content-addressed document.

A part holds everything compaction needs from a video (its record fields, its clips with their
keyframes and OCR, its stage runs), read once from the state database and the video's stage
documents. A knowledge point's nightly pack rebuilds only the parts whose inputs changed, which
``part_version`` detects from the database alone, so a pack costs what its own new or changed
videos cost, whatever the size of the corpus. Parts live in the artifact store under
``corpus/parts/<video_id>/<sha256>.json``: a new part never overwrites one a compaction on
another worker may be reading, and the one it replaces is deleted by the next compaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from textbook.export.files import dumps
from textbook.export.interleave import ClipItem, Frame, SampledFrame
from textbook.export.videos import KnowledgePoint, VideoEntry, knowledge_point_of, load_videos
from textbook.state.models import StageRun, VideoKnowledgePoint, VideoRow
from textbook.state.snapshot import make_snapshot, snapshot_runs

if TYPE_CHECKING:
    from textbook.context import Context

# Bumped when a part's content changes for the same inputs: every part is rebuilt once.
PART_FORMAT = 3  # 2: the question-pause-answer documents; 3: every derived dataset's, by stage
BATCH = 200  # videos read from the database and the store, and written as parts, at a time


@dataclass(frozen=True)
class PackSummary:
    videos: int  # videos the pack considered
    rebuilt: int  # parts whose inputs changed (or all of them, for a rebuild)
    written: int  # new part documents (a rebuilt part with the same content is not rewritten)

    @property
    def changed(self) -> bool:
        return self.written > 0


def part_key(video_id: str, data: bytes) -> str:
    return f"corpus/parts/{video_id}/{hashlib.sha256(data).hexdigest()[:32]}.json"


def part_version(row: VideoRow, links: list[VideoKnowledgePoint], kps: dict[str, KnowledgePoint],
                 runs: list[StageRun]) -> str:
    """A hash of every database value the part is built from. Stage documents need not be hashed:
    a published result names them by fingerprint, and a fingerprinted output never changes."""
    inputs = {
        "format": PART_FORMAT, "url": row.url, "meta": row.meta or {}, "status": row.status, "reason": row.reason,
        "created_at": row.created_at.isoformat() if row.created_at else None, "published": row.published,
        # a video never published reads its live runs
        "runs": None if row.published else make_snapshot("", "", runs)["runs"],
        "links": [[link.kp_id, link.search_keyword] for link in links],
        "kps": [kps[link.kp_id].to_dict() for link in links if link.kp_id in kps],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _clip_doc(clip: ClipItem) -> dict[str, Any]:
    return {"index": clip.index, "start": clip.start, "end": clip.end, "asr": clip.asr, "refined_asr": clip.refined_asr,
            "frames": [[f.source_key, f.path, f.ocr, f.ocr_deduplicated, f.ocr_boilerplate] for f in clip.frames],
            "sampled": [[f.source_key, f.path] for f in clip.sampled], "caption": clip.caption,
            "visual_kept": clip.visual_kept, "visual_reason": clip.visual_reason, "score_dropped": clip.score_dropped}


def part_document(entry: VideoEntry) -> bytes:
    snapshot = make_snapshot(entry.status, entry.reason, entry.runs)
    return dumps({
        "format": PART_FORMAT, "video_id": entry.video_id, "url": entry.url, "status": entry.status,
        "reason": entry.reason, "meta": entry.meta,
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "knowledge_points": [kp.to_dict() for kp in entry.knowledge_points],
        "search_keyword": entry.search_keyword, "runs": snapshot["runs"], "info": entry.info,
        "transcript_source": entry.transcript_source, "filters": entry.filters, "refine": entry.refine,
        "clips": None if entry.clips is None else [_clip_doc(c) for c in entry.clips], "derived": entry.derived,
        "export_error": entry.export_error,
    }).encode()


def entry_from_part(doc: dict[str, Any]) -> VideoEntry:
    vid = doc["video_id"]
    kps = [KnowledgePoint(k["id"], k["subject"], k["course"], k["sub_course"], k["name"], k["level"])
           for k in doc["knowledge_points"]]
    own = kps[0].id if kps else None
    clips = None if doc["clips"] is None else [
        ClipItem(vid, own, c["index"], c["start"], c["end"], c["asr"], c["refined_asr"],
                 tuple(Frame(*f) for f in c["frames"]), tuple(SampledFrame(*f) for f in c["sampled"]),
                 c["visual_kept"], c["visual_reason"], c.get("score_dropped", 0), c.get("caption"))
        for c in doc["clips"]]
    return VideoEntry(
        video_id=vid, url=doc["url"], status=doc["status"], reason=doc["reason"], meta=doc["meta"],
        created_at=datetime.fromisoformat(doc["created_at"]) if doc["created_at"] else None,
        knowledge_points=kps, search_keyword=doc["search_keyword"], runs=snapshot_runs(vid, {"runs": doc["runs"]}),
        info=doc["info"], transcript_source=doc["transcript_source"], filters=doc["filters"], refine=doc["refine"],
        clips=clips, derived=doc["derived"], export_error=doc["export_error"])


def refresh_parts(ctx: Context, video_ids: Sequence[str], *, rebuild: bool = False) -> PackSummary:
    """Bring the parts of ``video_ids`` up to date: those whose inputs changed, or all with
    ``rebuild``. Works through the videos a batch at a time, so memory holds one batch."""
    rebuilt = written = 0
    for start in range(0, len(video_ids), BATCH):
        batch = ctx.db.videos_by_id(video_ids[start:start + BATCH])
        done = _refresh_batch(ctx, batch, rebuild)
        rebuilt += done[0]
        written += done[1]
    return PackSummary(videos=len(video_ids), rebuilt=rebuilt, written=written)


def _refresh_batch(ctx: Context, rows: Sequence[VideoRow], rebuild: bool) -> tuple[int, int]:
    ids = [r.video_id for r in rows]
    links = ctx.db.links_of(ids)
    kps = {k: knowledge_point_of(r) for k, r in
           ctx.db.knowledge_points(link.kp_id for ls in links.values() for link in ls).items()}
    runs = ctx.db.runs_of([r.video_id for r in rows if not r.published])
    known = ctx.db.part_versions(ids)
    stale = []
    for row in rows:
        version = part_version(row, links[row.video_id], kps, runs.get(row.video_id, []))
        if rebuild or known.get(row.video_id) != version:
            stale.append((row, version))
    if not stale:
        return 0, 0
    written = 0
    records = []
    entries = load_videos(ctx, [row for row, _ in stale], links, runs, kps)
    for entry, (_, version) in zip(entries, stale, strict=True):
        data = part_document(entry)
        key = part_key(entry.video_id, data)
        if not ctx.store.exists(key):
            ctx.store.put_bytes(key, data)  # verified against its checksum before it is recorded
            written += 1
        kp = entry.knowledge_point
        records.append({"video_id": entry.video_id, "key": key, "version": version,
                        "kp_id": kp.id if kp else "", "level": kp.level if kp else 0})
    ctx.db.record_parts(records)
    return len(stale), written


def pack_knowledge_point(ctx: Context, kp_id: str) -> PackSummary:
    """The nightly pack of one knowledge point: the parts of the videos it found."""
    if ctx.db.knowledge_point(kp_id) is None:
        raise ValueError(f"unknown knowledge point {kp_id!r}: not in the database")
    return refresh_parts(ctx, ctx.db.video_ids(kp_ids=[kp_id]))
