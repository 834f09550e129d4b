"""Search a knowledge point's videos and register them; the videos to process for a run."""

from __future__ import annotations

import logging

from textbook.context import Context
from textbook.sources import get_source

log = logging.getLogger(__name__)


def discover(kp, ctx: Context, limit: int | None = None) -> list[str]:  # noqa: ANN001 - KnowledgePoint
    """Search ``kp`` with the configured source and record every result, linked to ``kp``.

    A video found again (by this or another knowledge point) keeps its one row and its progress;
    only a new link is added. Returns the ids found, best-ranked first.
    """
    ctx.db.upsert_knowledge_points([kp])
    source = get_source(ctx.settings)
    videos = source.search(kp.query, limit or ctx.settings.search.max_results)
    new = sum(ctx.db.add_video(v, kp.id) for v in videos)
    log.info("%s: %d videos found, %d new", kp.id, len(videos), new)
    return [v.video_id for v in videos]


def linked_videos(ctx: Context, kp_ids: list[str]) -> list[str]:
    """Every video linked to these knowledge points; finished stages are skipped when they run."""
    return [row.video_id for row in ctx.db.videos(kp_ids=kp_ids)]
