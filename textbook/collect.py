"""Search a knowledge point's videos and register them; the videos to process for a run."""

from __future__ import annotations

import logging

from tqdm import tqdm

from textbook.context import Context
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


def collect_and_run(ctx: Context, kps: list, limit: int | None) -> dict[str, str]:
    """Search each knowledge point, then run every linked video through every stage."""
    from textbook.pipeline import run_videos

    for kp in tqdm(kps, desc="search", unit="kp", disable=len(kps) < 2):
        discover(kp, ctx, limit)
    video_ids = linked_videos(ctx, [kp.id for kp in kps])
    with tqdm(total=len(video_ids), desc="videos", unit="video") as bar:
        return run_videos(video_ids, ctx, progress=lambda vid, status: (bar.set_postfix_str(f"{vid}: {status}"),
                                                                         bar.update()))


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
