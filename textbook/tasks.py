"""Entry points for orchestrators (Airflow tasks, Celery workers): ids in, ids out, no media.

One Context per worker process, so a model loaded by one task is reused by the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from textbook.config import Settings
from textbook.context import Context

log = logging.getLogger(__name__)
_CONTEXT: Context | None = None


def context() -> Context:
    """The process-wide context, from $TEXTBOOK_CONFIG and TEXTBOOK_* variables (or ``configure``)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = Context.from_settings()
    return _CONTEXT


def configure(settings: Settings) -> Context:
    """Use ``settings`` for this process (an orchestrator resolved connections into them)."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.settings != settings:
        _CONTEXT = Context.from_settings(settings)
    return _CONTEXT


def search(kp_id: str, limit: int | None = None, ctx: Context | None = None) -> list[str]:
    """Search a knowledge point; return the ids of the videos this knowledge point's DAG should
    process: found first by it, and with work left."""
    from textbook.collect import discover
    from textbook.pipeline import work_left

    ctx = ctx or context()
    discover(ctx.taxonomy.get(kp_id), ctx, limit)
    # Only videos this knowledge point found first: its DAG processes them, so two DAGs that found
    # the same video never race on it.
    return work_left(kp_id, ctx)


@dataclass(frozen=True)
class TaskSpec:
    """One orchestrator task: a few consecutive stages that belong on the same kind of worker."""

    task_id: str
    stages: tuple[str, ...]
    queue: str = "default"  # "gpu" for stages that run a model
    network: bool = False  # talks to the outside world: retried with backoff


# The per-video chain as orchestrators run it. tests/test_tasks.py checks it covers the pipeline's
# stages in order and agrees with each stage's model/network flags.
TASK_PLAN: tuple[TaskSpec, ...] = (
    TaskSpec("download", ("download",), network=True),
    TaskSpec("transcript", ("audio", "transcript"), queue="gpu"),
    TaskSpec("filters", ("filters", "refine"), queue="gpu", network=True),
    TaskSpec("clips", ("clips",)),
    TaskSpec("keyframes", ("keyframes",)),
    TaskSpec("ocr", ("ocr",)),
    TaskSpec("clip_filter", ("visual_filter",), queue="gpu"),
)


@dataclass
class TaskOutcome:
    video_id: str
    stage: str
    status: str  # done | cached | skipped
    reason: str

    @property
    def stops_chain(self) -> bool:
        """The video was dropped (by this stage or before): the rest of its chain is skipped."""
        return bool(self.reason)


def run_stage(stage_name: str, video_id: str, ctx: Context | None = None) -> TaskOutcome:
    """Run one stage on one video (raises StageFailed with the recorded reason)."""
    from textbook.pipeline import STAGES, complete_video, stage_by_name
    from textbook.runner import run_stage as _run
    from textbook.runner import time_limit

    ctx = ctx or context()
    stage = stage_by_name(stage_name)
    # A live holder (another run on the same video) is waited for, never skipped: its result is ours.
    out = _run(stage, video_id, ctx, wait=time_limit(stage, ctx).total_seconds())
    log.info("%s: %s %s", video_id, stage_name, _describe(out, ctx))
    if stage is STAGES[-1] or out.reason:
        log.info("%s: %s", video_id, complete_video(video_id, ctx))
    return TaskOutcome(video_id, stage_name, out.status, out.reason)


def _describe(out: Any, ctx: Context) -> str:
    """What a stage did, for the task log: its counts and time, or why nothing was done."""
    facts = ", ".join(f"{k}={v}" for k, v in out.summary.items()
                      if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k != "filtered")
    if out.status == "cached":
        return f"up to date (finished earlier with the same output settings; {facts or 'no counts'})"
    if out.status == "skipped":
        return f"skipped: the video was dropped upstream ({out.reason})"
    run = ctx.db.run(out.video_id, out.stage)
    took = f" in {run.seconds:.1f} s" if run is not None and run.seconds is not None else ""
    verdict = f"; dropped: {out.reason}" if out.reason else ""
    return f"done{took}: {facts or 'no counts'}{verdict}"


def run_task(task_id: str, video_id: str, ctx: Context | None = None, *, remote_ok: bool = True) -> TaskOutcome:
    """Run a task's stages in order; stops early when the video is dropped.

    On a GPU worker (``workers.model_server_url`` set) model tasks go to the model server, which
    keeps its models loaded across tasks; ``remote_ok=False`` is how the server itself calls in.
    """
    spec = next((t for t in TASK_PLAN if t.task_id == task_id), None)
    if spec is None:
        raise KeyError(f"unknown task {task_id!r}; tasks: {', '.join(t.task_id for t in TASK_PLAN)}")
    ctx = ctx or context()
    workers = ctx.settings.workers
    if remote_ok and workers.model_server_url and spec.queue == "gpu":
        from textbook.model_server import run_remote

        return TaskOutcome(**run_remote(workers.model_server_url, task_id, video_id, workers.model_server_timeout))
    out = TaskOutcome(video_id, task_id, "cached", "")
    for name in spec.stages:
        out = run_stage(name, video_id, ctx)
        if out.stops_chain:
            break
    return out


def run_summary(video_ids: list[str], ctx: Context) -> dict[str, Any]:
    """How the given videos stand: counts by status, and failures by category (most common first)
    with what usually helps."""
    from textbook.failures import CATEGORIES

    by_status: dict[str, int] = {}
    categories: dict[str, int] = {}
    for vid in video_ids:
        row = ctx.db.video(vid)
        by_status[row.status] = by_status.get(row.status, 0) + 1
        if row.status == "failed":
            failed = next((r for r in ctx.db.runs(vid) if r.status == "failed"), None)
            category = (failed.result or {}).get("category", "error") if failed else "error"
            categories[category] = categories.get(category, 0) + 1
    failures = {f"{c}: {CATEGORIES.get(c, '')}": n
                for c, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))}
    return {"videos": len(video_ids), "by_status": by_status, "failures": failures}


def pack(kp_id: str, ctx: Context | None = None) -> dict[str, Any]:
    """A knowledge point's nightly pack: the export parts of its videos, rebuilt where they changed
    (the dataset itself is written by ``compact``)."""
    from textbook.export import pack_knowledge_point

    ctx = ctx or context()
    summary = pack_knowledge_point(ctx, kp_id)
    return {"kp": kp_id, "videos": summary.videos, "rebuilt": summary.rebuilt, "written": summary.written,
            "changed": summary.changed}


def _published(summary: Any) -> dict[str, Any]:
    from textbook.report import write_report

    report = write_report(summary.root)
    return {"root": str(summary.root), "report": str(report), "samples": summary.samples,
            "images": summary.images, "videos": summary.videos, "changed": bool(summary.changed)}


def compact(ctx: Context | None = None, *, force: bool = False) -> dict[str, Any]:
    """Write the dataset and its HTML report from every video's part; returns counts for the
    corpus asset event and whether the dataset changed. Raises PublishRefused when it would lose
    shipped videos."""
    from textbook.export import compact as compact_corpus

    ctx = ctx or context()
    return _published(compact_corpus(ctx, force=force))


def export(kp_ids: list[str] | None = None, ctx: Context | None = None, *, force: bool = False) -> dict[str, Any]:
    """A full export (every part rebuilt) of the corpus or of a slice, with its report."""
    from textbook.export import export_dataset

    ctx = ctx or context()
    return _published(export_dataset(ctx, kp_ids, force=force))