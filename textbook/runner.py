"""Runs one stage on one video with the bookkeeping every stage shares.

Skips finished work (same config fingerprint), claims the run so two workers never do the same
thing, records done/skipped/failed with the artifacts and a reason. Called alike by the CLI
pipeline, by Airflow tasks and by tests.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from textbook.context import Context
from textbook.records import Video
from textbook.stages.base import Stage

log = logging.getLogger(__name__)


class StageFailed(RuntimeError):
    def __init__(self, video_id: str, stage: str, reason: str) -> None:
        super().__init__(f"{video_id}: {stage} failed: {reason}")
        self.video_id, self.stage, self.reason = video_id, stage, reason


class StageBusy(RuntimeError):
    """Another live worker holds this (video, stage)."""


@dataclass
class Outcome:
    video_id: str
    stage: str
    status: str  # done | skipped | cached (finished earlier, nothing done now)
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def filtered(self) -> bool:
        return bool(self.summary.get("filtered"))


def _stage(name: str) -> Stage:
    from textbook.pipeline import stage_by_name  # the pipeline imports every stage: only when needed

    return stage_by_name(name)


def fingerprint(stage: Stage, ctx: Context, _seen: dict[str, str] | None = None) -> str:
    """Hash of the stage's version, its config sections and (recursively) its inputs' fingerprints.

    Changing a knob re-runs the stage that reads it and every stage downstream of it.
    """
    seen = {} if _seen is None else _seen
    if stage.name not in seen:
        parts = [stage.name, stage.version, ctx.settings.section_hash(*stage.sections)]
        parts += [fingerprint(_stage(dep), ctx, seen) for dep in stage.requires]
        seen[stage.name] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return seen[stage.name]


def _upstream_filter(stage: Stage, ctx: Context, video_id: str) -> str:
    """The reason an upstream stage dropped the video, or ''. Raises if an input is not ready."""
    for dep in stage.requires:
        run = ctx.db.run(video_id, dep)
        if run is None or run.status not in ("done", "skipped") or run.config_hash != fingerprint(_stage(dep), ctx):
            raise StageFailed(video_id, stage.name, f"input stage '{dep}' has not finished with the current config")
        reason = run.result.get("filtered") or run.result.get("skipped") or _upstream_filter(_stage(dep), ctx, video_id)
        if reason:
            return reason
    return ""


def run_stage(stage: Stage, video_id: str, ctx: Context) -> Outcome:
    db = ctx.db
    row = db.video(video_id)
    if row is None:
        raise StageFailed(video_id, stage.name, "unknown video: not found by any search")
    fp = fingerprint(stage, ctx)
    prior = db.run(video_id, stage.name)
    if prior is not None and prior.status in ("done", "skipped") and prior.config_hash == fp:
        return Outcome(video_id, stage.name, "cached", prior.result.get("filtered", ""), prior.result)

    filtered = _upstream_filter(stage, ctx, video_id)
    if not db.claim(video_id, stage.name, fp):
        raise StageBusy(f"{video_id}: {stage.name} is being run by another worker")
    if filtered:
        db.finish(video_id, stage.name, "skipped", result={"skipped": filtered})
        return Outcome(video_id, stage.name, "skipped", filtered)

    db.set_video_status(video_id, "running")
    try:
        result = stage(Video.from_dict({**row.meta, "video_id": row.video_id, "url": row.url}), ctx)
    except Exception as exc:  # every failure is recorded with its reason, then re-raised
        reason = f"{type(exc).__name__}: {exc}".strip()
        log.debug("stage %s failed on %s:\n%s", stage.name, video_id, traceback.format_exc())
        db.finish(video_id, stage.name, "failed", error=reason)
        db.set_video_status(video_id, "failed", f"{stage.name}: {reason}")
        raise StageFailed(video_id, stage.name, reason) from exc

    summary = dict(result.summary)
    if result.filtered:
        summary["filtered"] = result.filtered
    db.finish(video_id, stage.name, "done", artifacts=[a.to_dict() for a in result.artifacts], result=summary)
    if result.filtered:
        db.set_video_status(video_id, "filtered", result.filtered)
    return Outcome(video_id, stage.name, "done", result.filtered, summary)
