"""Entry points for orchestrators (Airflow tasks, Celery workers): ids in, ids out, no media.

One Context per worker process, so a model loaded by one task is reused by the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textbook import datasets
from textbook.taskspec import TaskSpec

if TYPE_CHECKING:  # not at import time: DAG files import TASK_PLAN, and the state layer costs them 0.2 s each
    from textbook.config import Settings
    from textbook.context import Context

log = logging.getLogger(__name__)
_CONTEXT: Context | None = None


def context() -> Context:
    """The process-wide context, from $TEXTBOOK_CONFIG and TEXTBOOK_* variables (or ``configure``)."""
    global _CONTEXT
    from textbook.context import Context

    if _CONTEXT is None:
        _CONTEXT = Context.from_settings()
    return _CONTEXT


def configure(settings: Settings) -> Context:
    """Use ``settings`` for this process (an orchestrator resolved connections into them)."""
    global _CONTEXT
    from textbook.context import Context

    if _CONTEXT is None or _CONTEXT.settings != settings:
        _CONTEXT = Context.from_settings(settings)
    return _CONTEXT


def search(kp_id: str, ctx: Context | None = None, options: "RunOptions | None" = None) -> list[str]:
    """Search a knowledge point; return the ids of the videos this knowledge point's DAG should
    process: found first by it, and with work left (or, forcing a stage, all of them), at most
    ``options.limit``. A dry run searches nothing: it logs what would run and returns none."""
    from textbook.collect import discover
    from textbook.pipeline import work_left

    options = options or RunOptions()
    ctx = options.apply(ctx or context())
    if options.dry_run:
        for line in dry_run_plan(kp_id, ctx, options):
            log.info("%s", line)
        return []
    discover(ctx.taxonomy.get(kp_id), ctx, options.limit)
    # Only videos this knowledge point found first: its DAG processes them, so two DAGs that found
    # the same video never race on it.
    ids = list(ctx.db.primary_videos_runs(kp_id)) if options.force_stage else work_left(kp_id, ctx)
    ids = ids[: options.limit] if options.limit else ids
    why = f"forcing {options.force_stage} on every video it found first" if options.force_stage else "with work left"
    log.info("%s: %d videos to process (%s): %s", kp_id, len(ids), why, ", ".join(ids) or "none")
    return ids


# The per-video chain as orchestrators run it: the corpus's stages, then each registered dataset's
# (textbook.datasets). tests/test_tasks.py checks it covers the pipeline's stages in order and
# agrees with each stage's model/network flags.
CORPUS_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(("metadata", "download"), network=True),  # the metadata filter: nothing dropped is downloaded
    TaskSpec(("audio", "transcript"), queue="gpu"),
    TaskSpec(("filters", "refine"), queue="gpu", network=True),
    TaskSpec(("clips",)),
    TaskSpec(("keyframes",)),
    TaskSpec(("ocr",)),
    TaskSpec(("visual_filter",), queue="gpu"),
)
TASK_PLAN: tuple[TaskSpec, ...] = (*CORPUS_TASKS, *datasets.tasks())
STAGE_NAMES = tuple(s for t in TASK_PLAN for s in t.stages)  # the pipeline's, without importing its stages
_TAKEN = sorted({s for t in datasets.tasks() for s in t.stages} & {s for t in CORPUS_TASKS for s in t.stages})
if _TAKEN:
    raise datasets.DatasetError(f"dataset stage(s) {', '.join(_TAKEN)} have the name of a corpus stage")
SOURCES = ("youtube", "urls", "local")  # search.source's choices


class RunOptionError(ValueError):
    """A run option (a DAG param) out of range; the message names it."""


@dataclass(frozen=True)
class RunOptions:
    """What one run of a knowledge point may change (the DAG's params): at most ``limit`` videos,
    another source (``source_path``: its URLs file or folder), plan only (``dry_run``), or run
    ``force_stage`` again on every video although it finished."""

    limit: int | None = None
    source: str | None = None
    source_path: str | None = None
    dry_run: bool = False
    force_stage: str | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int)
                                       or self.limit < 1):
            raise RunOptionError(f"limit: expected a whole number of videos of at least 1, got {self.limit!r}")
        if self.source is not None and self.source not in SOURCES:
            raise RunOptionError(f"source: expected one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source_path and self.source not in ("urls", "local"):
            raise RunOptionError(f"source_path: only for source urls (a URLs file) or local (a folder), "
                                 f"not {self.source!r}")
        if self.force_stage is not None and self.force_stage not in STAGE_NAMES:
            raise RunOptionError(f"force_stage: expected one of {', '.join(STAGE_NAMES)}, "
                                 f"got {self.force_stage!r}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "RunOptions":
        """From a DAG run's params (unknown keys, such as Airflow's own, are ignored)."""
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if params.get(k) is not None})

    def apply(self, ctx: Context) -> Context:
        """``ctx`` searching the overriding source (the same database and store)."""
        from textbook.context import Context

        if not self.source:
            return ctx
        search: dict[str, Any] = {"source": self.source}
        if self.source_path:
            search["urls_file" if self.source == "urls" else "local_dir"] = self.source_path
        return Context(ctx.settings.replace(search=search), ctx.store, ctx.db)


def dry_run_plan(kp_id: str, ctx: Context, options: RunOptions) -> list[str]:
    """What a run would do, from the state database alone (no search, no stage): per video it knows,
    the tasks and stages that would run."""
    from textbook.pipeline import STAGES, work_left
    from textbook.runner import is_current

    source = ctx.settings.search
    where = {"urls": source.urls_file, "local": source.local_dir}.get(source.source, source.url_template)
    lines = [f"dry run of {kp_id}: nothing is searched or run; a real run would search {source.source} "
             f"({where}) for at most {options.limit or source.max_results} videos"]
    videos = ctx.db.primary_videos_runs(kp_id)
    ids = list(videos) if options.force_stage else work_left(kp_id, ctx)
    ids = ids[: options.limit] if options.limit else ids
    for vid in ids:
        runs = {r.stage: r for r in videos[vid][1]}
        todo = [s.name for s in STAGES if s.name == options.force_stage or not is_current(runs.get(s.name), s, ctx)]
        tasks = [t.task_id for t in TASK_PLAN if set(t.stages) & set(todo)]
        lines.append(f"would run {vid}: tasks {', '.join(tasks)} (stages {', '.join(todo)})")
    lines.append(f"{len(ids)} of the {len(videos)} known videos would run (new ones the search finds come on top)")
    return lines


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


def run_stage(stage_name: str, video_id: str, ctx: Context | None = None, *, force: bool = False) -> TaskOutcome:
    """Run one stage on one video (raises StageFailed with the recorded reason); ``force``: again,
    although it finished under the current settings."""
    from textbook.pipeline import STAGES, complete_video, stage_by_name
    from textbook.runner import run_stage as _run
    from textbook.runner import time_limit

    ctx = ctx or context()
    stage = stage_by_name(stage_name)
    # A live holder (another run on the same video) is waited for, never skipped: its result is ours.
    out = _run(stage, video_id, ctx, wait=time_limit(stage, ctx).total_seconds(), force=force)
    log.info("%s: %s %s", video_id, stage_name, _describe(out, ctx))
    if stage is STAGES[-1] or out.reason or force:
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


def run_task(task_id: str, video_id: str, ctx: Context | None = None, *, remote_ok: bool = True,
             force_stage: str | None = None) -> TaskOutcome:
    """Run a task's stages in order; stops early when the video is dropped. ``force_stage`` (one
    of its stages) runs again although it finished.

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

        return TaskOutcome(**run_remote(workers.model_server_url, task_id, video_id, workers.model_server_timeout,
                                        force_stage))
    out = TaskOutcome(video_id, task_id, "cached", "")
    for name in spec.stages:
        out = run_stage(name, video_id, ctx, force=name == force_stage)
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


def _published(summary: Any, ctx: Context) -> dict[str, Any]:
    from textbook.report import write_report

    report = write_report(summary.root, ctx.settings.export.report_max_videos)
    return {"root": str(summary.root), "report": str(report), "samples": summary.samples,
            "images": summary.images, "videos": summary.videos, "changed": bool(summary.changed)}


def compact(ctx: Context | None = None, *, force: bool = False) -> dict[str, Any]:
    """Write the dataset and its HTML report from every video's part; returns counts for the
    corpus asset event and whether the dataset changed. Raises PublishRefused when it would lose
    shipped videos."""
    from textbook.export import compact as compact_corpus

    ctx = ctx or context()
    return _published(compact_corpus(ctx, force=force), ctx)


def export(kp_ids: list[str] | None = None, ctx: Context | None = None, *, force: bool = False) -> dict[str, Any]:
    """A full export (every part rebuilt) of the corpus or of a slice, with its report."""
    from textbook.export import export_dataset

    ctx = ctx or context()
    return _published(export_dataset(ctx, kp_ids, force=force), ctx)