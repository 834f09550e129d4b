"""One Airflow DAG per knowledge point of the taxonomy: search -> one task chain per video -> pack.

Thin by design: every task calls ``textbook.tasks`` with ids and gets ids back; media never goes
through XCom. Adding a knowledge point (or a whole subject file) to the taxonomy adds its DAG at
the next parse. Heavy libraries are imported inside tasks, never at parse time, and the tasks
are small BaseOperator subclasses rather than @task functions: 4,000 DAGs must parse in seconds
and the decorator's per-task signature inspection costs twice as much.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator, chain, get_parsing_context, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from textbook.config import DagSettings, Settings, load_settings
from textbook.taxonomy import KnowledgePoint, load_taxonomy
from textbook.tasks import TASK_PLAN, TaskSpec
from textbook_airflow import resolved_settings  # plugins/ (on sys.path): shared with the plugin view

START = datetime(2026, 1, 1)


def nightly_cron(kp_id: str, cfg: DagSettings) -> str:
    """A minute inside the night window chosen by a stable hash, so 4,000 DAGs don't all start at once."""
    hours, minutes = (int(x) for x in cfg.window_start.split(":"))
    span = max(1, int(cfg.window_hours * 60))
    at = hours * 60 + minutes + int(hashlib.sha256(kp_id.encode()).hexdigest(), 16) % span
    return f"{at % 60} {(at // 60) % 24} * * *"


def schedule_for(kp: KnowledgePoint, cfg: DagSettings) -> str | None:
    if cfg.schedule == "nightly":
        return nightly_cron(kp.id, cfg)
    return None if cfg.schedule == "none" else cfg.schedule


def _context():  # noqa: ANN202 - textbook.context.Context, imported lazily
    from textbook import tasks

    return tasks.configure(resolved_settings())


def corpus_asset(settings: Settings) -> Asset:
    """The dataset as an Airflow Asset: pretraining DAGs schedule on it."""
    root = settings.export.root if settings.export.root.startswith("s3://") else settings.export_root.as_uri()
    return Asset(name="textbook_corpus", uri=root)


class SearchOperator(BaseOperator):
    """Search the knowledge point; return the ids of its videos that still have work to do."""

    def __init__(self, *, kp_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kp_id = kp_id

    def execute(self, context: Any) -> list[str]:
        from textbook import tasks

        return tasks.search(self.kp_id, ctx=_context())


class VideoStageOperator(BaseOperator):
    """Run one step of ``textbook.tasks.TASK_PLAN`` on one video; skip the rest if it is dropped."""

    template_fields = ("video_id",)

    def __init__(self, *, step: str, video_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.video_id = video_id

    def execute(self, context: Any) -> str:
        from textbook import tasks
        from textbook.runner import StageBusy, StageFailed

        try:
            outcome = tasks.run_task(self.step, self.video_id, _context())
        except StageBusy as exc:  # another run holds this video right now: not this run's failure
            raise AirflowSkipException(str(exc)) from None
        except StageFailed as exc:
            if exc.permanent:  # a removed video or a corrupt file: retries cannot help
                raise AirflowFailException(str(exc)) from exc
            raise
        if outcome.stops_chain:
            raise AirflowSkipException(f"{self.video_id}: dropped ({outcome.reason})")
        return self.video_id


class PackOperator(BaseOperator):
    """Export the dataset and its report; emit the corpus asset event only when it changed.

    Fails the DAG run, without touching the dataset, when the search failed or every video of the
    run failed: a night where the source is unreachable must not look green or start pretraining.
    """

    def execute(self, context: Any) -> dict:
        from textbook import tasks
        from textbook.export import PublishRefused

        ctx = _context()
        video_ids = context["ti"].xcom_pull(task_ids="search")
        if video_ids is None:
            raise AirflowFailException("search did not finish (see its log), so no video was processed; "
                                       "the dataset was left as it was and no corpus event is emitted")
        run = tasks.run_summary(video_ids, ctx)
        self.log.info("this run's %d videos: %s", run["videos"], run["by_status"])
        if video_ids and run["by_status"].get("failed", 0) == len(video_ids):
            reasons = "; ".join(f"{n} x {reason}" for reason, n in run["failures"].items())
            raise AirflowFailException(f"every video of this run failed ({len(video_ids)}): {reasons}. "
                                       "The dataset was left as it was and no corpus event is emitted")
        try:
            packed = tasks.pack(ctx=ctx)
        except PublishRefused as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("dataset %s: %d samples, %d images, %d videos (%s)", packed["root"], packed["samples"],
                      packed["images"], packed["videos"], "changed" if packed["changed"] else "unchanged")
        if not packed["changed"]:
            raise AirflowSkipException("the dataset did not change: no corpus event")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {k: packed[k] for k in ("samples", "images", "videos")}
        return packed


def _step_options(spec: TaskSpec, cfg: DagSettings) -> dict[str, Any]:
    model = spec.queue == "gpu"
    timeout = cfg.download_timeout_minutes if spec.task_id == "download" else (
        cfg.model_timeout_minutes if model else cfg.cpu_timeout_minutes)
    opts: dict[str, Any] = {
        "task_id": spec.task_id,
        "step": spec.task_id,
        "queue": cfg.gpu_queue if model else cfg.default_queue,
        "execution_timeout": timedelta(minutes=timeout),
        "map_index_template": "{{ task.video_id }}",  # the UI labels each map index with its video
        "retries": cfg.retries if spec.network else 0,
    }
    if spec.network:
        opts.update(retry_delay=timedelta(seconds=cfg.retry_delay_seconds), retry_exponential_backoff=2.0,
                    max_retry_delay=timedelta(seconds=cfg.max_retry_delay_seconds))
    if spec.task_id == "download" and cfg.download_pool:
        opts["pool"] = cfg.download_pool
    elif model and cfg.gpu_pool:
        opts["pool"] = cfg.gpu_pool
    return opts


def build_dag(kp: KnowledgePoint, cfg: DagSettings, corpus: Asset) -> DAG:
    doc = (f"### {kp.path}\n\n- knowledge point: `{kp.id}`\n- search query: `{kp.query}`\n"
           f"- level: {kp.level_name}\n\nSearches videos, runs one task chain per video "
           f"({' → '.join(t.task_id for t in TASK_PLAN)}), then packs the dataset.")
    with DAG(
        dag_id=kp.dag_id,
        schedule=schedule_for(kp, cfg),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=[f"subject:{kp.subject}", f"course:{kp.course}"],
        doc_md=doc,
        default_args={"owner": cfg.owner, "retries": 0},
    ) as dag:
        search = SearchOperator(
            task_id="search", kp_id=kp.id, queue=cfg.default_queue, retries=cfg.retries,
            retry_delay=timedelta(seconds=cfg.retry_delay_seconds), retry_exponential_backoff=2.0,
            execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes))

        @task_group(group_id="video")
        def video(video_id: str) -> None:
            chain(*(VideoStageOperator(video_id=video_id, **_step_options(spec, cfg)) for spec in TASK_PLAN))

        pack = PackOperator(task_id="pack", queue=cfg.default_queue, trigger_rule="all_done", outlets=[corpus],
                            execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes),
                            **({"pool": cfg.pack_pool} if cfg.pack_pool else {}))
        video.expand(video_id=search.output) >> pack
    return dag


def _register() -> None:
    settings = load_settings()
    corpus = corpus_asset(settings)
    wanted = get_parsing_context().dag_id  # set when a worker runs a task: build that DAG only
    for kp in load_taxonomy(settings.taxonomy_dir or None).knowledge_points:
        if wanted is None or wanted == kp.dag_id:
            globals()[kp.dag_id] = build_dag(kp, settings.dags, corpus)


_register()
