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
    def __init__(self, video_id: str, stage: str, reason: str, permanent: bool = False) -> None:
        super().__init__(f"{video_id}: {stage} failed: {reason}")
        self.video_id, self.stage, self.reason = video_id, stage, reason
        # Retrying cannot help (a removed video, a corrupt file): orchestrators should not retry.
        self.permanent = permanent


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


def fingerprint(stage: Stage, ctx: Context) -> str:
    """Hash of the stage's version, its config sections and (recursively) its inputs' fingerprints.

    Changing a knob re-runs the stage that reads it and every stage downstream of it. Cached on the
    context, whose settings never change.
    """
    cache = ctx.fingerprints
    if stage.name not in cache:
        parts = [stage.name, stage.version, ctx.settings.section_hash(*stage.sections)]
        parts += [fingerprint(_stage(dep), ctx) for dep in stage.requires]
        cache[stage.name] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return cache[stage.name]


def _upstream_filter(stage: Stage, ctx: Context, video_id: str) -> str:
    """The reason an upstream stage dropped the video, or ''. Raises if an input is not ready."""
    runs = {r.stage: r for r in ctx.db.runs(video_id)}
    seen: set[str] = set()
    todo = list(stage.requires)
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        run = runs.get(dep)
        if run is None or run.status not in ("done", "skipped") or run.config_hash != fingerprint(_stage(dep), ctx):
            raise StageFailed(video_id, stage.name, f"input stage '{dep}' has not finished with the current config")
        reason = _dropped(run.result)
        if reason:
            return reason
        todo += _stage(dep).requires
    return ""


def _dropped(result: dict[str, Any]) -> str:
    return result.get("filtered") or result.get("skipped") or ""


def run_stage(stage: Stage, video_id: str, ctx: Context) -> Outcome:
    db = ctx.db
    row = db.video(video_id)
    if row is None:
        raise StageFailed(video_id, stage.name, "unknown video: not found by any search", permanent=True)
    fp = fingerprint(stage, ctx)
    prior = db.run(video_id, stage.name)
    if prior is not None and prior.status in ("done", "skipped") and prior.config_hash == fp:
        return Outcome(video_id, stage.name, "cached", _dropped(prior.result), prior.result)

    filtered = _upstream_filter(stage, ctx, video_id)
    if not db.claim(video_id, stage.name, fp):
        raise StageBusy(f"{video_id}: {stage.name} is being run by another worker")
    if filtered:
        db.finish(video_id, stage.name, "skipped", result={"skipped": filtered})
        return Outcome(video_id, stage.name, "skipped", filtered)

    db.set_video_status(video_id, "running")
    try:
        result = stage(Video.from_dict({**row.meta, "video_id": row.video_id, "url": row.url}), ctx)
    except BaseException as exc:  # recorded with its reason, then re-raised; timeouts and kills too
        reason = f"{type(exc).__name__}: {exc}".strip().removesuffix(":")
        permanent = bool(getattr(exc, "permanent", False))
        log.debug("stage %s failed on %s:\n%s", stage.name, video_id, traceback.format_exc())
        db.finish(video_id, stage.name, "failed", error=reason, result={"permanent": permanent})
        db.set_video_status(video_id, "failed", f"{stage.name}: {reason}")
        if not isinstance(exc, Exception):
            raise  # a timeout or a kill from the orchestrator keeps its own type
        raise StageFailed(video_id, stage.name, reason, permanent) from exc

    summary = dict(result.summary)
    if result.filtered:
        summary["filtered"] = result.filtered
    db.finish(video_id, stage.name, "done", artifacts=[a.to_dict() for a in result.artifacts], result=summary)
    if result.filtered:
        db.set_video_status(video_id, "filtered", result.filtered)
    return Outcome(video_id, stage.name, "done", result.filtered, summary)
