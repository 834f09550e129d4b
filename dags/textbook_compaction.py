"""The compaction DAG: the dataset (FORMAT.md) assembled from every video's export part.

Each knowledge point's DAG only brings its videos' parts up to date (the ``textbook_parts``
event); this DAG writes the global view once (cross-video packing, the seeded shuffle, the card,
the report) and emits ``textbook_corpus``, the event pretraining schedules on, only when the
dataset changed. Scheduled by ``dags.compaction_schedule`` (after the nightly window by default),
or triggered by hand; ``force`` publishes even when shipped videos would be lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from textbook.config import load_settings
from textbook_airflow import resolved_settings  # plugins/ (on sys.path)
from textbook_dag_factory import corpus_asset

SETTINGS = load_settings()


class CompactOperator(BaseOperator):
    """Write the dataset and its report from the parts; the corpus event only when it changed."""

    def execute(self, context: Any) -> dict:
        from textbook import tasks
        from textbook.export import PublishRefused

        ctx = tasks.configure(resolved_settings())
        try:
            out = tasks.compact(ctx, force=bool(context["params"].get("force")))
        except PublishRefused as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("dataset %s: %d samples, %d images, %d videos (%s); report %s", out["root"], out["samples"],
                      out["images"], out["videos"], "changed" if out["changed"] else "unchanged", out["report"])
        if not out["changed"]:
            raise AirflowSkipException("the dataset did not change: no corpus event")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {k: out[k] for k in ("samples", "images", "videos")}
        return out


cfg = SETTINGS.dags
with DAG(
    dag_id="textbook_compaction",
    dag_display_name="Textbook: compact the corpus",
    description="Assemble the dataset from every video's export part and publish the corpus event",
    schedule=None if cfg.compaction_schedule == "none" else cfg.compaction_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags={"textbook", "corpus"},
    doc_md=__doc__,
    default_args={"owner": cfg.owner, "retries": 0},
    params={"force": Param(False, type="boolean",
                           description="publish even if videos the current dataset ships would be lost")},
) as dag:
    CompactOperator(task_id="compact", queue=cfg.default_queue, outlets=[corpus_asset(SETTINGS)],
                    execution_timeout=timedelta(minutes=cfg.cpu_timeout_minutes),
                    **({"pool": cfg.pack_pool} if cfg.pack_pool else {}))
