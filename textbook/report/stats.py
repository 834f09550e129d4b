"""The funnel and the statistics table, computed from the exported files alone.

The numbers are those of the dataset card (FORMAT.md section 5), which computes them from the
database at export time; here they are recomputed from ``videos.jsonl`` and the OBELICS shards so
that the report works on a dataset folder by itself. The test checks the two agree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from textbook.export.card import spread
from textbook.export.videos import NO_SUBJECT
from textbook.failures import CATEGORIES
from textbook.report.data import Dataset, SampleRow


def subject(video: dict[str, Any]) -> str:
    kp = video.get("knowledge_point") or {}
    return kp.get("subject") or NO_SUBJECT


@dataclass(frozen=True)
class Outcome:
    """Why a video is not in the samples: what happened, at which stage, and the reason given."""

    video: dict[str, Any]
    outcome: str
    reason: str


def outcome(video: dict[str, Any]) -> Outcome | None:
    """None for an exported video; else what kept it out."""
    status = video["status"]
    if video["exported"]:
        return None
    if status == "filtered":
        stage = video.get("filtered_by") or "an unknown stage"
        return Outcome(video, f"filtered at {stage}", video["reason"] or "(no reason given)")
    if status == "failed":
        stage = video.get("failed_stage") or "an unknown stage"
        return Outcome(video, f"failed at {stage}", video.get("error") or video["reason"] or "(no error given)")
    if status == "done":
        return Outcome(video, "finished, not exported", video.get("export_error") or "(no reason given)")
    return Outcome(video, "not finished", f"status {status!r}")


BEFORE_MEDIA = ("metadata", "download")  # stages that end before the media is stored


def _downloaded(video: dict[str, Any]) -> bool:
    """Known to have got past the download stage (an unfinished video may have, but the record cannot say)."""
    status = video["status"]
    if status == "done":
        return True
    if status == "filtered":
        return (video.get("filtered_by") or "download") not in BEFORE_MEDIA
    if status == "failed":
        return (video.get("failed_stage") or "download") not in BEFORE_MEDIA
    return False


def funnel(data: Dataset) -> list[tuple[str, int]]:
    videos = data.videos
    return [
        ("found by search", len(videos)),
        ("downloaded", sum(_downloaded(v) for v in videos)),
        ("finished the pipeline", sum(v["status"] == "done" for v in videos)),
        ("kept (in the samples)", sum(bool(v["exported"]) for v in videos)),
        ("filtered", sum(v["status"] == "filtered" for v in videos)),
        ("failed", sum(v["status"] == "failed" for v in videos)),
        ("finished, not exported", sum(v["status"] == "done" and not v["exported"] for v in videos)),
        ("not finished", sum(v["status"] not in ("done", "filtered", "failed") for v in videos)),
    ]



def _count(video: dict[str, Any], name: str) -> int:
    return int((video.get("counts") or {}).get(name) or 0)


def _row(name: str, videos: list[dict[str, Any]], samples: list[SampleRow]) -> tuple[Any, ...]:
    return (
        name,
        len(videos),
        f"{sum(float(v['duration'] or 0.0) for v in videos) / 3600:.2f}",
        sum(_count(v, "clips") for v in videos),
        sum(_count(v, "images") for v in videos),  # keyframes shown in the OBELICS view, as in the card
        sum(_count(v, "transcript_tokens") for v in videos),
        sum(_count(v, "ocr_tokens") for v in videos),
        len(samples),
        spread([s.image_num for s in samples]),
        spread([s.text_num for s in samples]),
    )


def statistics(data: Dataset) -> list[tuple[Any, ...]]:
    """One row per subject (sorted), then the overall row; a sample counts for every subject it holds."""
    exported = [v for v in data.videos if v["exported"]]
    subject_of = {v["video_id"]: subject(v) for v in data.videos}
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in exported:
        by_subject[subject(v)].append(v)
    rows = [_row(s, by_subject[s], [f for f in data.samples if s in {subject_of.get(v) for v in f.video_ids}])
            for s in sorted(by_subject)]
    rows.append(_row("Overall", exported, data.samples))
    return rows


@dataclass(frozen=True)
class StageCost:
    stage: str
    videos: int  # videos whose published result includes a run of the stage
    seconds: float  # their summed run time
    video_hours: float  # summed duration of those videos

    @property
    def per_video_hour(self) -> float | None:
        """Stage seconds per hour of video: what the next thousand hours will cost."""
        return self.seconds / self.video_hours if self.video_hours else None


def stage_costs(data: Dataset) -> list[StageCost]:
    """Per stage (in the order stages ran), time spent over every video, kept or not, from stage_seconds."""
    seconds: dict[str, float] = {}
    videos: Counter[str] = Counter()
    hours: dict[str, float] = defaultdict(float)
    for video in data.videos:
        for stage, secs in (video.get("stage_seconds") or {}).items():
            seconds[stage] = seconds.get(stage, 0.0) + float(secs)
            videos[stage] += 1
            hours[stage] += float(video["duration"] or 0.0) / 3600
    return [StageCost(stage, videos[stage], seconds[stage], hours[stage]) for stage in seconds]


def failure_groups(data: Dataset) -> list[tuple[str, int, str]]:
    """(category, failed videos, what usually helps), most common first."""
    counts = Counter(v.get("failure_category") or "error" for v in data.videos if v["status"] == "failed")
    return [(c, n, CATEGORIES.get(c, "")) for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
