"""`textbook backfill` against a real api-server and a real scheduler.

The subject's DAGs are nightly and paused (as Airflow creates them), and their latest slot has
passed, so unpausing one makes the scheduler start a run of its own at once. The scheduler moves
runs from queued to running itself; no task ever runs (the default pool has no slot), and the test
ends each running run through the REST API, which it polls all along. It proves the backfill never
has more than ``--max-active`` runs of the subject queued or running, and that unpausing started
no run besides the backfill's.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from airflow_server import start_airflow_server
from sqlalchemy import create_engine, text

from textbook.airflow_api import AirflowApiError
from textbook.airflow_ops import backfill
from textbook.demo.through_airflow import airflow

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
KPS = ["one", "two", "three", "four", "five"]


def _admin(sql: str) -> None:
    engine = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    name = f"airflow_bf_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "TEXTBOOK_DAGS__SCHEDULE": "nightly",
           # a window that has passed today, whatever the time: every DAG has a slot to catch up
           "TEXTBOOK_DAGS__WINDOW_START": "00:00", "TEXTBOOK_DAGS__WINDOW_HOURS": "0.02"}
    try:
        with start_airflow_server(tmp_path_factory.mktemp("airflow-bf"), subjects={"bs": KPS}, scheduler=True,
                                  extra_env=env) as server:
            airflow(["pools", "set", "default_pool", "0", "no task runs in this test"], server.env, server.log)
            yield server
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_backfill_never_has_more_than_max_active_runs_under_a_real_scheduler(scheduled):
    client = scheduled.client()
    dag_ids = [scheduled.dag_id("bs", kp) for kp in KPS]
    assert all(d["is_paused"] for d in client.dags("textbook__bs__"))
    seen: list[int] = []
    run_ids: set[tuple[str, str]] = set()
    stop = threading.Event()

    def finisher() -> None:
        """Poll every run of the subject; end the ones the scheduler set running a second ago."""
        me = scheduled.client()
        running_since: dict[str, float] = {}
        while not stop.is_set():
            runs = [r for r in me.dag_runs("textbook__bs__") if r["dag_id"] in dag_ids]
            run_ids.update((r["dag_id"], r["dag_run_id"]) for r in runs)
            seen.append(sum(r["state"] in ("queued", "running") for r in runs))
            for r in runs:
                if r["state"] == "running" and time.monotonic() - running_since.setdefault(r["dag_id"],
                                                                                        time.monotonic()) >= 1:
                    try:
                        me.call("PATCH", f"/api/v2/dags/{r['dag_id']}/dagRuns/{r['dag_run_id']}",
                                body={"state": "success"})
                    except AirflowApiError:  # the scheduler was updating the same run: next tick
                        pass
            stop.wait(0.3)

    thread = threading.Thread(target=finisher, daemon=True)
    thread.start()
    lines: list[str] = []
    try:
        runs = backfill(client, dag_ids, label="bs", max_active=2, poll_seconds=0.5, timeout=240, echo=lines.append)
        time.sleep(6)  # a few scheduler loops more: a run unpausing started would show now
    finally:
        stop.set()
        thread.join()
    assert sorted(r.dag_id for r in runs) == sorted(dag_ids) and {r.state for r in runs} == {"success"}
    assert max(seen) == 2  # the throttle held, and was used
    assert {run_id for _, run_id in run_ids} == {runs[0].run_id}  # no run of the scheduler's own
    assert len(run_ids) == len(dag_ids)
    now = datetime.now(timezone.utc)
    for dag in client.dags("textbook__bs__"):
        assert not dag["is_paused"] and datetime.fromisoformat(dag["next_dagrun_run_after"]) > now, dag
    assert any("ETA" in line for line in lines) and "5/5 finished" in lines[-1]
