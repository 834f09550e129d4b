"""The ordered stages of the paper's pipeline, and a runner for one video end to end."""

from __future__ import annotations

import logging
from typing import Iterable

from textbook.context import Context
from textbook.runner import Outcome, StageBusy, StageFailed, fingerprint, run_stage
from textbook.stages import audio, clips, download, filters, keyframes, ocr, refine, transcript, visual_filter
from textbook.stages.base import Stage

log = logging.getLogger(__name__)

STAGES: tuple[Stage, ...] = (
    download.STAGE,
    audio.STAGE,
    transcript.STAGE,
    filters.STAGE,
    refine.STAGE,
    clips.STAGE,
    keyframes.STAGE,
    ocr.STAGE,
    visual_filter.STAGE,
)
_BY_NAME = {s.name: s for s in STAGES}


def stage_by_name(name: str) -> Stage:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(_BY_NAME)}") from None


def chain_state(video_id: str, ctx: Context) -> tuple[str, str]:
    """Where the video's chain stands under the current config, from its stage runs:
    ('done' | 'filtered' | 'failed' | 'permanent_failure' | 'pending', reason)."""
    runs = {r.stage: r for r in ctx.db.runs(video_id)}
    for s in STAGES:
        run = runs.get(s.name)
        if run is None or run.status == "running" or run.config_hash != fingerprint(s, ctx):
            return "pending", ""
        if run.status == "failed":
            return ("permanent_failure" if run.result.get("permanent") else "failed"), f"{s.name}: {run.error}"
        if run.result.get("filtered"):
            return "filtered", run.result["filtered"]
    return "done", ""


def complete_video(video_id: str, ctx: Context) -> str:
    """Set the video's final status from its stage runs: done, filtered, or failed."""
    state, reason = chain_state(video_id, ctx)
    if state == "pending":
        return ctx.db.video(video_id).status
    status = "failed" if state == "permanent_failure" else state
    ctx.db.set_video_status(video_id, status, reason)
    return status


def is_finished(video_id: str, ctx: Context) -> bool:
    """True when the video needs no work under the current config: every stage done, or dropped by
    a filter, or failed in a way no retry can mend. A transient failure is retried next run."""
    return chain_state(video_id, ctx)[0] in ("done", "filtered", "permanent_failure")


def run_video(video_id: str, ctx: Context, stages: Iterable[Stage] = STAGES) -> list[Outcome]:
    """Run every stage on one video in order; a failure is recorded and re-raised as StageFailed."""
    outcomes = []
    for s in stages:
        outcome = run_stage(s, video_id, ctx)
        outcomes.append(outcome)
        if outcome.filtered or outcome.status == "skipped":
            break
    complete_video(video_id, ctx)
    return outcomes


def run_videos(video_ids: list[str], ctx: Context, progress=None) -> dict[str, str]:  # noqa: ANN001
    """Run many videos; one failing never stops the others. Returns video id -> final status."""
    final: dict[str, str] = {}
    for vid in video_ids:
        try:
            run_video(vid, ctx)
        except (StageFailed, StageBusy) as exc:
            log.warning("%s", exc)
        final[vid] = ctx.db.video(vid).status
        if progress is not None:
            progress(vid, final[vid])
    return final
