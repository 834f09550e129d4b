"""One Airflow DAG per knowledge point of the taxonomy: search -> one task chain per video -> pack.

Thin by design: every task calls ``textbook.tasks`` with ids and gets ids back; media never goes
through XCom. Adding a knowledge point (or a whole subject file) to the taxonomy adds its DAG at
the next parse. Heavy libraries are imported inside tasks, never at parse time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from airflow.sdk import DAG, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from textbook.config import DagSettings, load_settings
from textbook.taxonomy import KnowledgePoint, load_taxonomy
from textbook.tasks import TASK_PLAN, TaskSpec

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


def _task_options(spec: TaskSpec, cfg: DagSettings) -> dict:
    model = spec.queue == "gpu"
    timeout = cfg.download_timeout_minutes if spec.task_id == "download" else (
        cfg.model_timeout_minutes if model else cfg.cpu_timeout_minutes)
    opts = {
        "task_id": spec.task_id,
        "queue": cfg.gpu_queue if model else cfg.default_queue,
        "execution_timeout": timedelta(minutes=timeout),
        "map_index_template": "{{ video_id }}",
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


def _video_task(spec: TaskSpec, cfg: DagSettings):  # noqa: ANN202 - a task decorator's product
    @task(**_task_options(spec, cfg))
    def run(video_id: str) -> str:
        from textbook import tasks

        get_current_context()["video_id"] = video_id  # labels the map index in the UI
        outcome = tasks.run_task(spec.task_id, video_id)
        if outcome.stops_chain:
            raise AirflowSkipException(f"{video_id}: dropped ({outcome.reason})")
        return video_id

    return run


def build_dag(kp: KnowledgePoint, cfg: DagSettings) -> DAG:
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
        @task(task_id="search", queue=cfg.default_queue, retries=cfg.retries,
              retry_delay=timedelta(seconds=cfg.retry_delay_seconds), retry_exponential_backoff=2.0,
              execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes))
        def search() -> list[str]:
            from textbook import tasks

            return tasks.search(kp.id)

        @task_group(group_id="video")
        def video(video_id: str) -> None:
            ref = video_id
            for spec in TASK_PLAN:
                ref = _video_task(spec, cfg)(ref)

        @task(task_id="pack", queue=cfg.default_queue, trigger_rule="all_done",
              execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes))
        def pack() -> dict:
            from textbook import tasks

            return tasks.pack()

        video.expand(video_id=search()) >> pack()
    return dag


def _register() -> None:
    settings = load_settings()
    for kp in load_taxonomy(settings.taxonomy_dir or None).knowledge_points:
        globals()[kp.dag_id] = build_dag(kp, settings.dags)


_register()
