"""Search a knowledge point's videos and register them; the videos to process for a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from textbook.context import Context
from textbook.progress import Progress, step
from textbook.records import Video
from textbook.sources import get_source
from textbook.sources.base import disambiguated, url_identity

log = logging.getLogger(__name__)


def discover(kp, ctx: Context, limit: int | None = None) -> list[str]:  # noqa: ANN001 - KnowledgePoint
    """Search ``kp`` with the configured source and record every result, linked to ``kp``.

    A video found again (by this or another knowledge point) keeps its one row and its progress;
    only a new link is added. Returns the ids found, best-ranked first.
    """
    ctx.db.upsert_knowledge_points([kp])
    source = get_source(ctx.settings)
    videos = [_unique_against_db(v, ctx) for v in source.search(kp.query, limit or ctx.settings.search.max_results)]
    new = sum(ctx.db.add_video(v, kp.id) for v in videos)
    log.info("%s: %d videos found, %d new", kp.id, len(videos), new)
    return [v.video_id for v in videos]


def _unique_against_db(video: Video, ctx: Context) -> Video:
    """A different video whose id is already taken (same file name elsewhere) gets its own id."""
    row = ctx.db.video(video.video_id)
    if row is not None and url_identity(row.url) != url_identity(video.url):
        return disambiguated(video)
    return video


def linked_videos(ctx: Context, kp_ids: list[str]) -> list[str]:
    """Every video linked to these knowledge points; finished stages are skipped when they run."""
    return [row.video_id for row in ctx.db.videos(kp_ids=kp_ids)]


@dataclass
class RunResult:
    final: dict[str, str]  # every linked video -> its status after the run
    worked: list[str]  # the videos that had work left when the run began

    @property
    def dead(self) -> bool:
        """Every video that had work to do failed: nothing new to publish (the source is down)."""
        return bool(self.worked) and all(self.final.get(v) == "failed" for v in self.worked)


def collect_and_run(ctx: Context, kps: list, limit: int | None) -> RunResult:
    """Search each knowledge point, then run every linked video through every stage, with a
    progress line on stderr per search, per stage started and per video finished."""
    from textbook.pipeline import is_finished, run_videos

    for n, kp in enumerate(kps, start=1):
        step(f"search {n}/{len(kps)}: {kp.id}")
        discover(kp, ctx, limit)
    video_ids = linked_videos(ctx, [kp.id for kp in kps])
    worked = [vid for vid in video_ids if not is_finished(vid, ctx)]
    progress = Progress(len(worked))  # the ETA counts videos with work only
    progress.note(f"{len(video_ids)} videos: {len(worked)} with work left, {len(video_ids) - len(worked)} "
                  "finished before")
    todo = set(worked)

    def finished(vid: str, status: str) -> None:
        if vid in todo:
            progress.video(vid, status)

    final = run_videos(video_ids, ctx, progress=finished, on_stage=progress.stage)
    return RunResult(final, worked)


def print_outcome(final: dict[str, str], ctx: Context) -> None:
    from textbook.tasks import run_summary

    summary = run_summary(list(final), ctx)
    print("videos: " + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items())))
    for vid, status in final.items():
        if status in ("failed", "filtered"):
            print(f"  {vid}: {status}: {ctx.db.video(vid).reason}")
    if summary["failures"]:
        print("failures by category:")
        for reason, n in summary["failures"].items():
            print(f"  {n} x {reason}")
