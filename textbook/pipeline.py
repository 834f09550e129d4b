"""The ordered stages of the paper's pipeline, and a runner for one video end to end."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Iterable, Mapping

from textbook.context import Context
from textbook.runner import Outcome, StageBusy, StageFailed, is_current, run_stage
from textbook import datasets
from textbook.stages import audio, clips, download, filters, keyframes, metadata, ocr, refine, transcript, visual_filter
from textbook.sources.local import source_stamp
from textbook.stages.base import Stage
from textbook.state import StageRun
from textbook.state.snapshot import make_snapshot, same_result

log = logging.getLogger(__name__)

# The corpus's stages, then each registered dataset's (textbook.datasets), in the task plan's order.
STAGES: tuple[Stage, ...] = (
    metadata.STAGE,
    download.STAGE,
    audio.STAGE,
    transcript.STAGE,
    filters.STAGE,
    refine.STAGE,
    clips.STAGE,
    keyframes.STAGE,
    ocr.STAGE,
    visual_filter.STAGE,
    *datasets.stages(),
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
    return state_of({r.stage: r for r in ctx.db.runs(video_id)}, lambda: ctx.db.video(video_id).url, ctx)


def state_of(runs: Mapping[str, StageRun], url: Callable[[], str], ctx: Context) -> tuple[str, str]:
    """``chain_state`` of a video given its runs by stage, wherever they were read from; ``url``
    is asked for only when a permanent failure must be checked against its local file."""
    for s in STAGES:
        run = runs.get(s.name)
        if run is not None and run.status == "failed":
            if not run.result.get("permanent"):
                return "failed", f"{s.name}: {run.error}"
            if run.result.get("source", "") != source_stamp(url()):
                return "pending", ""  # the file behind a permanent failure changed: worth another try
            return "permanent_failure", f"{s.name}: {run.error}"
        if not is_current(run, s, ctx):
            return "pending", ""
        if run.result.get("filtered"):
            return "filtered", run.result["filtered"]
    return "done", ""


FINISHED = ("done", "filtered", "permanent_failure")


def work_left(kp_id: str, ctx: Context) -> list[str]:
    """The videos the knowledge point's DAG should process: found first by it and not finished
    (``is_finished``), read with one query for the whole knowledge point, not a few per video."""
    return [vid for vid, (url, runs) in ctx.db.primary_videos_runs(kp_id).items()
            if state_of({r.stage: r for r in runs}, lambda url=url: url, ctx)[0] not in FINISHED]


def complete_video(video_id: str, ctx: Context) -> str:
    """Set the video's final status from its stage runs: done, filtered, or failed. A finished
    chain (done or filtered) becomes the video's published result, replacing the previous one."""
    state, reason = chain_state(video_id, ctx)
    if state == "pending":
        return ctx.db.video(video_id).status
    status = "failed" if state == "permanent_failure" else state
    ctx.db.set_video_status(video_id, status, reason)
    if status in ("done", "filtered"):
        runs = [r for r in ctx.db.runs(video_id) if is_current(r, stage_by_name(r.stage), ctx)]
        snapshot = make_snapshot(status, reason, runs)
        if not same_result(ctx.db.video(video_id).published, snapshot):
            ctx.db.publish(video_id, snapshot)
    return status


def is_finished(video_id: str, ctx: Context) -> bool:
    """True when the video needs no work under the current config: every stage done, or dropped by
    a filter, or failed in a way no retry can mend. A transient failure is retried next run."""
    return chain_state(video_id, ctx)[0] in FINISHED


StageCallback = Callable[[str, str, int, int], None]  # (video id, stage, its number, of how many)


def run_video(video_id: str, ctx: Context, stages: Iterable[Stage] = STAGES, wait: float = 0.0,
              on_stage: StageCallback | None = None) -> list[Outcome]:
    """Run every stage on one video in order; a failure is recorded and re-raised as StageFailed.
    ``on_stage`` hears of each stage about to do work (not of those finished before)."""
    outcomes = []
    stages = list(stages)
    for n, s in enumerate(stages, start=1):
        if on_stage is not None and not is_current(ctx.db.run(video_id, s.name), s, ctx):
            on_stage(video_id, s.name, n, len(stages))
        outcome = run_stage(s, video_id, ctx, wait=wait)
        outcomes.append(outcome)
        if outcome.filtered or outcome.status == "skipped":
            break
    complete_video(video_id, ctx)
    return outcomes


def run_videos(video_ids: list[str], ctx: Context, progress: Callable[[str, str], None] | None = None,
               on_stage: StageCallback | None = None) -> dict[str, str]:
    """Run many videos; one failing never stops the others. Returns video id -> final status.

    A video another live worker is running is put back and taken up again after the others, so two
    runs over the same videos share the work and both end with every video finished.
    """
    final: dict[str, str] = {}
    todo = deque(video_ids)
    busy_since: dict[str, float] = {}
    while todo:
        vid = todo.popleft()
        if chain_state(vid, ctx)[0] == "permanent_failure":  # only an explicit retry tries it again
            final[vid] = complete_video(vid, ctx)
            if progress is not None:
                progress(vid, final[vid])
            continue
        try:
            run_video(vid, ctx, on_stage=on_stage)
        except StageBusy as exc:
            busy_since.setdefault(vid, time.monotonic())
            log.info("%s; coming back to it", exc)
            todo.append(vid)
            if all(v in busy_since for v in todo):
                time.sleep(0.5)  # only videos other workers hold are left: wait for them
            continue
        except StageFailed as exc:
            log.warning("%s", exc)
        final[vid] = ctx.db.video(vid).status
        if progress is not None:
            progress(vid, final[vid])
    return final

