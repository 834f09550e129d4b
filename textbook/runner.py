"""Runs one stage on one video with the bookkeeping every stage shares.

Skips finished work (same output fingerprint), claims the run so two workers never do the same
thing (a claim whose worker died is taken over at once on its host, after its lease elsewhere),
keeps the claim alive with a heartbeat, and records done/skipped/failed with the artifacts and a
reason. Called alike by the CLI pipeline, by Airflow tasks and by tests.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator

from textbook.config import output_knobs
from textbook.context import Context
from textbook.failures import categorize, one_line
from textbook.records import Video
from textbook.sources.local import source_stamp
from textbook.stages.base import Stage
from textbook.state import StageRun
from textbook.state.db import ClaimLost

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
    """Hash of the stage's version, the output knobs of its config sections and (recursively) its
    inputs' fingerprints.

    Changing an output knob re-runs the stage that reads it and every stage downstream of it;
    operational knobs (retries, timeouts, where the source list lives) re-run nothing. Cached on
    the context, whose settings never change.
    """
    return _fingerprint(stage, ctx, legacy=False)


def _fingerprint(stage: Stage, ctx: Context, legacy: bool) -> str:
    cache = ctx.fingerprints
    name = f"{stage.name}:legacy" if legacy else stage.name
    if name not in cache:
        settings = ctx.settings
        sections = (settings.legacy_section_hash if legacy else settings.section_hash)(*stage.sections)
        parts = [stage.name, stage.version, sections]
        parts += [_fingerprint(_stage(dep), ctx, legacy) for dep in stage.requires]
        cache[name] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return cache[name]


def is_current(run: StageRun | None, stage: Stage, ctx: Context) -> bool:
    """The run finished under the current settings: its fingerprint, or the first release's hash of
    the same settings (a corpus written before output and operational knobs were told apart)."""
    return (run is not None and run.status in ("done", "skipped")
            and run.config_hash in (fingerprint(stage, ctx), _fingerprint(stage, ctx, legacy=True)))


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
        if not is_current(run, _stage(dep), ctx):
            if run is not None and run.status == "running" and not ctx.db.stale_reason(run):
                raise StageBusy(f"{video_id}: {stage.name} waits for its input {dep}, which {run.worker} is running")
            raise StageFailed(video_id, stage.name, f"input stage '{dep}' has not finished with the current config")
        reason = _dropped(run.result)
        if reason:
            return reason
        todo += _stage(dep).requires
    return ""


def _dropped(result: dict[str, Any]) -> str:
    return result.get("filtered") or result.get("skipped") or ""


def time_limit(stage: Stage, ctx: Context) -> timedelta:
    """The stage's task timeout: a claim older than this is dead whatever its heartbeat says."""
    dags = ctx.settings.dags
    minutes = (dags.download_timeout_minutes if stage.network else
               dags.model_timeout_minutes if stage.model else dags.cpu_timeout_minutes)
    return timedelta(minutes=minutes)


def _claim(stage: Stage, video_id: str, ctx: Context, fp: str, wait: float, force: bool = False) -> str | None:
    """A claim token, or None when the stage finished meanwhile (another worker did it). Waits up to
    ``wait`` seconds for a live holder; raises StageBusy after that."""
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while not ctx.db.claim(video_id, stage.name, fp, token, max_age=time_limit(stage, ctx), force=force):
        if is_current(ctx.db.run(video_id, stage.name), stage, ctx):
            return None
        if time.monotonic() >= deadline:
            holder = ctx.db.run(video_id, stage.name)
            raise StageBusy(f"{video_id}: {stage.name} is being run by {holder.worker if holder else 'another worker'}")
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    return token


@contextmanager
def _heartbeat(ctx: Context, video_id: str, stage: str, token: str) -> Iterator[None]:
    """Refresh the claim every ``database.heartbeat_seconds`` while the stage runs."""
    stop = threading.Event()
    every = ctx.settings.database.heartbeat_seconds

    def beat() -> None:
        while not stop.wait(every):
            try:
                if not ctx.db.heartbeat(video_id, stage, token):
                    log.warning("%s: %s: our claim was taken over", video_id, stage)
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                log.warning("%s: %s: heartbeat failed: %s", video_id, stage, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{stage}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_stage(stage: Stage, video_id: str, ctx: Context, wait: float = 0.0, force: bool = False) -> Outcome:
    """Run ``stage`` on the video unless it already finished under the current settings (``force``:
    run it all the same, e.g. after a model or tool the fingerprint does not see was fixed).

    ``wait``: seconds to wait while another live worker holds the stage (then its result is used).
    """
    db = ctx.db
    row = db.video(video_id)
    if row is None:
        raise StageFailed(video_id, stage.name, "unknown video: not found by any search", permanent=True)
    fp = fingerprint(stage, ctx)
    prior = db.run(video_id, stage.name)
    if is_current(prior, stage, ctx) and not force:
        return Outcome(video_id, stage.name, "cached", _dropped(prior.result), prior.result)

    filtered = _upstream_filter(stage, ctx, video_id)
    token = _claim(stage, video_id, ctx, fp, wait, force)
    if token is None:
        done = db.run(video_id, stage.name)
        return Outcome(video_id, stage.name, "cached", _dropped(done.result), done.result)
    if filtered:
        db.finish(video_id, stage.name, "skipped", token, result={"skipped": filtered})
        return Outcome(video_id, stage.name, "skipped", filtered)

    # The video's own status changes only when the stage ends: a run that dies (or cannot write,
    # on a full disk) leaves the last settled status, and its stage row shows it was running.
    try:
        with _heartbeat(ctx, video_id, stage.name, token):
            result = stage(Video.from_dict({**row.meta, "video_id": row.video_id, "url": row.url}), ctx)
        summary = dict(result.summary)
        if result.filtered:
            summary["filtered"] = result.filtered
        settings = ctx.settings
        db.remember_settings(fp, stage.name, {name: output_knobs(getattr(settings, name)) for name in stage.sections})
        db.finish(video_id, stage.name, "done", token, artifacts=[a.to_dict() for a in result.artifacts],
                  result=summary)
    except ClaimLost as lost:
        raise StageBusy(str(lost)) from None
    except BaseException as exc:  # recorded with its reason, then re-raised; timeouts and kills too
        # (recording the result can fail too, e.g. on a full disk: then the failure is recorded)
        reason = f"{type(exc).__name__}: {exc}".strip().removesuffix(":")
        permanent = bool(getattr(exc, "permanent", False))
        category = categorize(exc)
        log.debug("stage %s failed on %s:\n%s", stage.name, video_id, traceback.format_exc())
        try:
            failure = {"permanent": permanent, "category": category, **({"source": source_stamp(row.url)}
                                                                          if permanent else {})}
            db.finish(video_id, stage.name, "failed", token, error=reason, result=failure)
            db.set_video_status(video_id, "failed", f"{stage.name}: {one_line(f'{category}: {exc}')}")
        except ClaimLost as lost:
            log.warning("%s", lost)
        except Exception as unrecorded:  # noqa: BLE001 - the stage's own error is the one to report
            log.error("%s: %s: could not record the failure (%s); the claim ends with this process",
                      video_id, stage.name, unrecorded)
        if not isinstance(exc, Exception):
            raise  # a timeout or a kill from the orchestrator keeps its own type
        raise StageFailed(video_id, stage.name, reason, permanent) from exc

    if result.filtered:
        db.set_video_status(video_id, "filtered", result.filtered)
    return Outcome(video_id, stage.name, "done", result.filtered, summary)
