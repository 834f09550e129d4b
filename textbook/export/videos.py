"""Every video considered, read back from the database and the store, and its ``videos.jsonl`` line.

Everything is read from each video's *published* result (its last finished chain), so a re-run in
progress or failing never changes what is exported. Only videos whose published status is ``done``
contribute samples, but every video gets a record (FORMAT.md section 4): which rule dropped it,
which stage failed and why, or that it has not finished yet.
A finished video whose stage documents are missing or inconsistent is not exported; its record
says why instead of the export failing for everyone.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from textbook.artifacts import find_key
from textbook.export.interleave import ClipItem, ExportInputError, build_clips
from textbook.tokens import count_tokens
from textbook.records import Verdict
from textbook.state import StageRun
from textbook.state.models import VideoKnowledgePoint, VideoRow
from textbook.state.snapshot import Run, snapshot_runs
from textbook.store import ArtifactStore, MissingArtifact

if TYPE_CHECKING:
    from textbook.context import Context

log = logging.getLogger(__name__)

EXPORT_STAGES = ("clips", "keyframes", "ocr", "visual_filter")

NO_SUBJECT = "(no subject)"  # a video whose knowledge point names no subject


@dataclass(frozen=True)
class KnowledgePoint:
    id: str
    subject: str
    course: str
    sub_course: str
    name: str
    level: int

    @property
    def path(self) -> str:
        return " / ".join(p for p in (self.subject, self.course, self.sub_course, self.name) if p)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "subject": self.subject, "course": self.course,
                "sub_course": self.sub_course, "name": self.name, "level": self.level}


@dataclass
class VideoEntry:
    video_id: str
    url: str
    status: str
    reason: str
    meta: dict[str, Any]
    created_at: datetime | None
    knowledge_points: list[KnowledgePoint]
    search_keyword: str
    runs: Sequence[Run]  # live ORM rows, or a published snapshot's
    info: dict[str, Any] = field(default_factory=dict)
    transcript_source: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    refine: dict[str, Any] = field(default_factory=dict)
    clips: list[ClipItem] | None = None  # set for finished videos whose documents all load
    # finished videos: the output document of every stage a derived dataset is made of
    # (``View.produced_by``), by stage; a stage that wrote none is absent
    derived: dict[str, Any] = field(default_factory=dict)
    export_error: str = ""
    exported: bool = False

    @property
    def knowledge_point(self) -> KnowledgePoint | None:
        """The first knowledge point that found the video (by time found, then id) is its own."""
        return self.knowledge_points[0] if self.knowledge_points else None

    @property
    def subject(self) -> str:
        kp = self.knowledge_point
        return kp.subject if kp and kp.subject else NO_SUBJECT

    @property
    def duration(self) -> float | None:
        value = self.info.get("duration") or self.meta.get("duration")
        if value is None and self.clips:
            value = max(c.end for c in self.clips)
        return float(value) if value is not None else None

    def run(self, stage: str) -> Run | None:
        return next((r for r in self.runs if r.stage == stage), None)


def _read_json(store: ArtifactStore, key: str) -> Any:
    try:
        return store.get_json(key)
    except MissingArtifact:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportInputError(f"{key}: not valid JSON ({exc})") from None


def _read_object(store: ArtifactStore, key: str) -> dict[str, Any]:
    """A JSON object document, {} when absent."""
    doc = _read_json(store, key)
    if doc is not None and not isinstance(doc, dict):
        raise ExportInputError(f"{key}: expected a JSON object, got {type(doc).__name__}")
    return doc or {}


def knowledge_point_of(row: Any) -> KnowledgePoint:
    return KnowledgePoint(row.id, row.subject, row.course, row.sub_course, row.name, int(row.level or 0))


def load_videos(ctx: Context, rows: Sequence[VideoRow], links: dict[str, list[VideoKnowledgePoint]],
                runs: dict[str, list[StageRun]], kps: dict[str, KnowledgePoint]) -> list[VideoEntry]:
    """The videos of ``rows`` as their published results say (live runs for a video never
    published), each with its stage documents read from the store; ``links``, ``runs`` and ``kps``
    are fetched by the caller in batches."""
    entries = []
    for row in rows:
        video_links = links.get(row.video_id, [])
        meta = dict(row.meta or {})
        published = row.published
        entry = VideoEntry(
            video_id=row.video_id, url=row.url, meta=meta,
            status=published["status"] if published else row.status,
            reason=(published["reason"] if published else row.reason) or "",
            created_at=row.created_at,
            knowledge_points=[kps[link.kp_id] for link in video_links if link.kp_id in kps],
            search_keyword=(video_links[0].search_keyword if video_links else "") or meta.get("search_keyword", ""),
            runs=snapshot_runs(row.video_id, published) if published else runs.get(row.video_id, []),
        )
        try:
            _load_documents(entry, ctx.store)
        except (ExportInputError, MissingArtifact) as exc:
            entry.clips = None
            entry.export_error = str(exc)
            log.warning("video %s: %s", entry.video_id, exc)
        entries.append(entry)
    return entries


def _doc_key(entry: VideoEntry, stage: str, name: str = "") -> str | None:
    """The store key of a document the entry's run of ``stage`` recorded."""
    run = entry.run(stage)
    return find_key(run.artifacts or [], name or f"{stage}.json") if run is not None else None


def _load_documents(entry: VideoEntry, store: ArtifactStore) -> None:
    vid = entry.video_id

    def obj(stage: str, name: str = "") -> dict[str, Any]:
        key = _doc_key(entry, stage, name)
        return _read_object(store, key) if key else {}

    entry.info = obj("download", "info.json")
    transcript_run = entry.run("transcript")
    entry.transcript_source = (transcript_run.result.get("source") if transcript_run else None) or None
    if entry.transcript_source is None and transcript_run is not None:
        entry.transcript_source = obj("transcript").get("source")
    entry.filters = obj("filters")
    if entry.run("refine") is not None:
        entry.refine = refine_record(obj("refine"))
    if entry.status != "done":
        return
    docs = {}
    for stage in EXPORT_STAGES:
        key = _doc_key(entry, stage)
        doc = _read_json(store, key) if key else None
        if doc is None:
            raise ExportInputError(f"finished video has no {stage}.json"
                                   + (f" ({key} is missing from the store)" if key else " recorded"))
        docs[stage] = doc
    kp = entry.knowledge_point
    clips = build_clips(vid, kp.id if kp else None, docs)
    for clip in clips:
        for frame in clip.frames:
            if not store.exists(frame.source_key):
                raise ExportInputError(f"keyframe {frame.source_key!r} is missing from the store")
    entry.clips = clips
    entry.derived = derived_documents(entry, store)


def derived_documents(entry: VideoEntry, store: ArtifactStore) -> dict[str, Any]:
    """The derived datasets' stage documents of a finished video, each image and video they
    recorded checked to be in the store (a view copies them)."""
    from textbook.export.views import derived

    docs = {}
    for _, produced in derived():
        run, key = entry.run(produced.stage), _doc_key(entry, produced.stage)
        if run is None or key is None:
            continue
        docs[produced.stage] = _read_object(store, key)
        for media in (str(a.get("key", "")) for a in run.artifacts or []):
            if media.endswith((".jpg", ".mp4")) and not store.exists(media):
                raise ExportInputError(f"{produced.stage} file {media!r} is missing from the store")
    return docs


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def refine_record(doc: dict[str, Any]) -> dict[str, Any]:
    """What videos.jsonl shows of refine.json: the judges' scoring and the refinement's counts
    (per-segment drift checks stay in refine.json)."""
    if "scoring" not in doc:  # refine stage version 1: one optional score, no judges
        score = doc.get("score")
        skipped = "" if score is not None else "not scored (refine stage version 1)"
        return {"scoring": {"skipped": skipped, "judges": [], "score": score, "reason": doc.get("reason") or ""},
                "refinement": {"backend": doc.get("backend"), "refined": doc.get("backend") not in (None, "none")}}
    refinement = {k: v for k, v in (doc.get("refinement") or {}).items() if k != "drift"}
    return {"scoring": doc["scoring"], "refinement": refinement}


def judges(entry: VideoEntry) -> list[dict[str, Any]]:
    """Each LLM judge's raw answers, parsed scores and verdict ([] when none ran)."""
    return list((entry.refine.get("scoring") or {}).get("judges") or [])


def verdicts(entry: VideoEntry) -> list[dict[str, Any]]:
    """Every filter's decision: the metadata stage's (before download), the filters stage's, and the
    LLM judges' combined one. A listing rule both stages ran shows once, as the filters stage judged
    it on the metadata the download recorded."""
    raw = entry.filters.get("verdicts")
    if raw is None:
        run = entry.run("filters")
        raw = run.result.get("verdicts") if run else None
    listed = entry.run("metadata")
    seen = {item.get("name") for item in raw or []}
    early = [item for item in (listed.result.get("verdicts") or [] if listed else []) if item.get("name") not in seen]
    out = []
    for item in [*early, *(raw or [])]:
        v = Verdict.from_dict(item)
        out.append({"name": v.name, "passed": bool(v.passed), "score": _score(v.score), "reason": v.reason})
    refine_run = entry.run("refine")
    scoring = entry.refine.get("scoring") or {}
    if refine_run is not None and not scoring.get("skipped") and scoring:
        dropped = refine_run.result.get("filtered", "")
        out.append({"name": "llm_judges", "passed": not dropped, "score": _score(scoring.get("score")),
                    "reason": scoring.get("reason") or dropped})
    return out


def counts(entry: VideoEntry, image_tokens: int) -> dict[str, int | None]:
    clips = entry.clips
    if clips is None:
        return {"clips": None, "keyframes": None, "images": None, "visual_dropped_clips": None,
                "transcript_tokens": None, "ocr_tokens": None, "tokens": None}
    return {
        "clips": len(clips),
        "keyframes": sum(len(c.frames) for c in clips),
        "images": sum(len(c.images) for c in clips),
        "visual_dropped_clips": sum(1 for c in clips if c.frames and not c.visual_kept),
        "transcript_tokens": sum(c.text_tokens for c in clips),
        "ocr_tokens": sum(count_tokens(c.ocr_text) for c in clips),
        "tokens": sum(c.cost(image_tokens) for c in clips),
    }


def filtered_by(entry: VideoEntry) -> str:
    """The stage whose result dropped the video, '' when none did."""
    return next((r.stage for r in entry.runs if r.status == "done" and r.result.get("filtered")), "")


def failure(entry: VideoEntry) -> tuple[str, str]:
    """(stage, error) of the failed stage run, or ('', '')."""
    run = next((r for r in entry.runs if r.status == "failed"), None)
    if run is not None:
        return run.stage, run.error or entry.reason
    if entry.status == "failed":
        stage, _, error = entry.reason.partition(":")
        return (stage.strip(), error.strip()) if error else ("", entry.reason)
    return "", ""


def failure_category(entry: VideoEntry) -> str:
    """The failed stage's category (textbook.failures), '' when nothing failed; 'error' when unrecorded."""
    run = next((r for r in entry.runs if r.status == "failed"), None)
    if run is None and entry.status != "failed":
        return ""
    return str(((run.result or {}) if run is not None else {}).get("category") or "error")


def stage_seconds(entry: VideoEntry) -> dict[str, float]:
    """Seconds each stage of the published result took (done or failed), for the report's cost table.
    Not part of ``videos.jsonl``: two runs of the same input take different times, and the dataset's
    bytes must not differ for it (compaction.TIMINGS keeps them)."""
    return {r.stage: round(float(r.seconds), 2) for r in entry.runs
            if r.status in ("done", "failed") and r.seconds is not None}


def video_record(entry: VideoEntry, image_tokens: int) -> dict[str, Any]:
    kp = entry.knowledge_point
    failed_stage, error = failure(entry)
    info, meta = entry.info, entry.meta
    return {
        "video_id": entry.video_id,
        "url": entry.url,
        "status": entry.status,
        "reason": entry.reason,
        "knowledge_point": kp.to_dict() if kp else None,
        "knowledge_points": [k.to_dict() for k in entry.knowledge_points],
        "search_keyword": entry.search_keyword,
        "title": meta.get("title") or info.get("title") or "",
        "desc": meta.get("description") or info.get("description") or "",
        "channel": meta.get("channel") or info.get("channel") or "",
        "duration": entry.duration,
        "language": entry.filters.get("language") or meta.get("language") or info.get("language") or "",
        "license": meta.get("license") or info.get("license") or "",
        "transcript_source": entry.transcript_source,
        "verdicts": verdicts(entry),
        "judges": judges(entry),
        "refinement": entry.refine.get("refinement") or {},
        "filtered_by": filtered_by(entry),
        "failed_stage": failed_stage,
        "error": error,
        "failure_category": failure_category(entry),
        "counts": counts(entry, image_tokens),
        "exported": entry.exported,
        "export_error": entry.export_error,
    }
