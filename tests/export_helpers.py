"""Build the state the exporter reads: a SQLite database, a local store, and stage documents.

The documents follow the shared stage-output contract (COMMON.md); keyframes are real small JPEGs.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from textbook import keys
from textbook.artifacts import output_key
from textbook.config import load_settings
from textbook.context import Context
from textbook.pipeline import STAGES
from textbook.records import Clip, ClipFrames, ClipVisual, Keyframe, OcrResult, Segment, Transcript, Verdict, Video
from textbook.state import StateDB
from textbook.store import LocalStore

from state_helpers import finish_stage, publish

DONE_STAGES = tuple(s.name for s in STAGES)
PASSING = [Verdict("too_short", True, 60.0, "duration 60.0 s"), Verdict("silent", True, -20.0, "loud enough"),
           Verdict("not_english", True, 0.98, "English confidence 0.98"),
           Verdict("repetitive", True, 0.01, "1% of word 3-grams repeated")]


def make_context(tmp_path: Path, **export: Any) -> Context:
    settings = load_settings(environ={}, data_root=str(tmp_path / "data"), export=export)
    db = StateDB(settings.db_url)
    db.create_schema()
    return Context(settings=settings, store=LocalStore(settings.artifact_root), db=db)


def with_export(ctx: Context, **export: Any) -> Context:
    """The same database and store, other export settings."""
    return Context(settings=ctx.settings.replace(export=export), store=ctx.store, db=ctx.db)


def add_knowledge_point(ctx: Context, kp_id: str, subject: str = "Mathematics", level: int = 1) -> None:
    ctx.db.upsert_knowledge_points([SimpleNamespace(
        id=kp_id, subject=subject, course=f"{subject} course", sub_course="Basics", name=f"Point {kp_id}",
        path=f"{subject} / {subject} course / Basics / Point {kp_id}", query=f"{kp_id} lesson", level=level)])


@dataclass
class ClipSpec:
    start: float
    end: float
    text: str
    refined: str | None = None
    keyframes: int = 1
    visual_kept: bool = True
    ocr: tuple[str, ...] = ()  # raw OCR per keyframe (deduplicated text = raw text here)
    boilerplate: tuple[str, ...] = ()  # template lines the OCR stage set apart, on every keyframe of the clip


def two_judges(keep: bool = True) -> dict[str, Any]:
    """The refine stage's scoring record for two judges, one keeping and one rejecting (or both rejecting)."""
    def judge(name: str, score: float, verdict: str) -> dict[str, Any]:
        scores = {"relevance": score, "knowledge_density": 6.5, "transcription_quality": 8.0}
        return {"judge": name, "answers": [json.dumps({**scores, "reason": "on topic"})], "scores": scores,
                "reason": "on topic", "verdict": verdict, "prompt_version": "judge-v1", "score": min(scores.values())}
    judges = [judge("openai:deepseek-v2", 7.0 if keep else 2.5, "keep" if keep else "reject"),
              judge("openai:llama3-70b-instruct", 3.0, "reject")]
    return {"rule": "all_reject", "min_score": 5.0, "prompt_version": "judge-v1", "drop": not keep,
            "score": 6.5 if keep else 3.0, "reason": "1 of 2 judges rejected; rule all_reject: kept", "judges": judges}


def jpeg(seed: int) -> bytes:
    img = Image.new("RGB", (16, 12), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def register(ctx: Context, vid: str, kp_id: str, **meta: Any) -> Video:
    video = Video(vid, f"https://www.youtube.com/watch?v={vid}", title=meta.pop("title", f"Lesson {vid}"),
                  description=f"About {kp_id}", channel="Teacher", duration=meta.pop("duration", 60.0),
                  license="cc-by", search_keyword=f"{kp_id} lesson", **meta)
    ctx.db.add_video(video, kp_id)
    return video


def add_done_video(ctx: Context, vid: str, kp_id: str, clips: list[ClipSpec], *, sampled: int = 2,
                   transcript_source: str = "captions", verdicts: list[Verdict] | None = None,
                   scoring: dict[str, Any] | None = None, keep: tuple[str, ...] = ()) -> None:
    """A video every stage finished, published as the runner leaves it (``scoring``: the judges'
    record); the stages in ``keep`` were run for real beforehand and are left as they finished."""
    video = register(ctx, vid, kp_id)
    verdicts = verdicts or PASSING
    segments = [Segment(c.start, c.end, c.text) for c in clips]
    clip_records = [Clip(i, c.start, c.end, c.text, c.refined) for i, c in enumerate(clips)]
    frames, ocr, visual, images = [], [], [], {}
    for i, c in enumerate(clips):
        kfs = []
        for k in range(1, c.keyframes + 1):
            name = keys.keyframe_name(vid, c.start, c.end, k)
            images[name] = jpeg(sum(map(ord, vid)) + i * 10 + k)
            key = output_key(ctx, vid, "keyframes", name)
            kfs.append(Keyframe(i, k, c.start + k, key))
            text = c.ocr[k - 1] if k - 1 < len(c.ocr) else ""
            ocr.append(OcrResult(key, text, text, boilerplate=list(c.boilerplate)).to_dict())
        samples = []
        for n in range(1, sampled + 1):
            name = keys.sampled_frame_name(vid, c.start, c.end, n)
            images[name] = jpeg(100 + i * 10 + n)
            samples.append(output_key(ctx, vid, "keyframes", name))
        frames.append(ClipFrames(i, samples, kfs).to_dict())
        visual.append(ClipVisual(i, c.visual_kept, "" if c.visual_kept else "face", 0.5).to_dict())
    files = {
        "download": {"info.json": {"media_key": output_key(ctx, vid, "download", keys.media_name()), "captions": [],
                                   "duration": video.duration, "has_audio": True, "width": 16, "height": 12}},
        "transcript": {"transcript.json": Transcript(transcript_source, "en", segments).to_dict()},
        "filters": {"filters.json": {"kept": True, "reason": "", "language": "en", "language_confidence": 0.98,
                                     "verdicts": [v.to_dict() for v in verdicts]}},
        "refine": {"refine.json": {"scoring": scoring or {"skipped": "no judges configured", "judges": []},
                                   "refinement": {"backend": "test", "refined": any(c.refined for c in clips)},
                                   "segments": [Segment(c.start, c.end, c.refined or c.text).to_dict()
                                                for c in clips]}},
        "clips": {"clips.json": {"clips": [c.to_dict() for c in clip_records]}},
        "keyframes": {**images, "keyframes.json": {"clips": frames, "params": {"fps": 1.0}}},
        "ocr": {"ocr.json": {"results": ocr}},
        "visual_filter": {"visual_filter.json": {"clips": visual}},
    }
    for stage in (s for s in DONE_STAGES if s not in keep):
        result = {"source": transcript_source} if stage == "transcript" else {}
        if stage == "filters":
            result = {"kept": True, "verdicts": [v.to_dict() for v in verdicts]}
        if stage == "refine" and scoring:
            result = {"scoring": scoring}
        finish_stage(ctx, vid, stage, result=result, files=files.get(stage))
    assert publish(ctx, vid) == "done"


def add_filtered_video(ctx: Context, vid: str, kp_id: str, failing: Verdict) -> None:
    register(ctx, vid, kp_id)
    verdicts = [v for v in PASSING if v.name != failing.name] + [failing]
    reason = f"{failing.name}: {failing.reason}"
    for stage in ("metadata", "download", "audio"):
        finish_stage(ctx, vid, stage)
    finish_stage(ctx, vid, "transcript", result={"source": "faster_whisper"})
    finish_stage(ctx, vid, "filters", result={"kept": False, "filtered": reason}, files={"filters.json": {
        "kept": False, "reason": reason, "language": "en", "language_confidence": 0.9,
        "verdicts": [v.to_dict() for v in verdicts]}})
    assert publish(ctx, vid) == "filtered"


def add_failed_video(ctx: Context, vid: str, kp_id: str, stage: str = "download",
                     error: str = "DownloadError: HTTP Error 403: Forbidden") -> None:
    register(ctx, vid, kp_id)
    finish_stage(ctx, vid, stage, status="failed", error=error)
    ctx.db.set_video_status(vid, "failed", f"{stage}: {error}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def obelics_samples(root: Path) -> list[dict[str, Any]]:
    return [s for p in sorted((root / "obelics").glob("part-*.jsonl")) for s in read_jsonl(p)]


def clip_samples(root: Path) -> list[dict[str, Any]]:
    return [s for p in sorted((root / "clips").glob("part-*.jsonl")) for s in read_jsonl(p)]


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
