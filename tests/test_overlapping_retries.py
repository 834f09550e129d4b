"""Retries that overlap are never lost: clears of one run's videos while the run is still going.

Airflow resets a run's state on a clear only when the run has finished; a clear that lands while
the scheduler decides the run is finished leaves its tasks without a state in a finished run.
``clear_confirmed`` checks for that and clears them again. A fake API shows it does exactly that;
a real scheduler (LocalExecutor, Postgres metadata) then gets retries at the worst moments: while
another video's retry runs, while ``pack`` runs, and as the run is about to finish.
"""

from __future__ import annotations

import time
import uuid

import pytest
from airflow_server import free_port, start_airflow_server
from test_backfill_scheduler import PG, _admin

from textbook.airflow_ops import RetryError, clear_confirmed, retry_through_airflow
from textbook.context import Context
from textbook.demo.through_airflow import airflow
from textbook.status import airflow_task

VIDEOS = [f"ov_{i}" for i in range(4)]

DOWNLOAD = airflow_task("download")  # the mapped task that downloads a video (metadata_download)


class LosingApi:
    """The API after a clear that lost the race: the run says success, the cleared tasks have no state."""

    def __init__(self, lose: int) -> None:
        self.lose, self.clears = lose, []

    def clear_task_instances(self, dag_id, run_id, targets, **kwargs):
        self.clears.append((targets, kwargs["include_downstream"]))
        return [{"task_id": "video.download", "map_index": 1}, {"task_id": "pack", "map_index": -1}]

    def dag_run(self, dag_id, run_id):
        return {"state": "success" if len(self.clears) <= self.lose else "queued"}

    def task_instances(self, dag_id, run_id):
        return [{"task_id": "video.download", "map_index": 1, "state": None},
                {"task_id": "video.download", "map_index": 0, "state": "failed"},
                {"task_id": "pack", "map_index": -1, "state": None}]


def test_a_clear_lost_to_the_run_finishing_is_cleared_again():
    api = LosingApi(lose=1)
    cleared = clear_confirmed(api, "d", "r", [("video.download", 1)])
    assert len(cleared) == 2
    assert api.clears == [([("video.download", 1)], True), ([("pack", -1), ("video.download", 1)], False)]
    with pytest.raises(RetryError, match="finished with cleared tasks left unscheduled after 3 clears"):
        clear_confirmed(LosingApi(lose=99), "d", "r", [("video.download", 1)])


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    name = f"airflow_ov_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__CORE__PARALLELISM": "4"}
    try:
        with start_airflow_server(tmp_path_factory.mktemp("airflow-ov"), subjects={"ov": ["lectures"]},
                                  scheduler=True, extra_env=env) as server:
            for pool, slots in (("youtube", "4"), ("textbook_pack", "1")):
                airflow(["pools", "set", pool, slots, "as airflow-init creates it"], server.env, server.log)
            yield server
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait(what: str, check, timeout: float = 300.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")


@pytest.mark.slow
def test_overlapping_retries_all_run_and_the_run_never_ends_with_tasks_unscheduled(scheduled, tmp_path):
    client = scheduled.client()
    dag_id = scheduled.dag_id("ov", "lectures")
    urls = tmp_path / "refused.txt"
    refused = free_port()
    urls.write_text("".join(f"http://127.0.0.1:{refused}/{vid}\n" for vid in VIDEOS))
    run_id = "overlap"
    client.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body={
        "dag_run_id": run_id, "logical_date": None, "conf": {"source": "urls", "source_path": str(urls)}})

    def run_state() -> str:
        return client.dag_run(dag_id, run_id)["state"]

    def tis() -> dict[tuple[str, int], dict]:
        return {(ti["task_id"], ti["map_index"]): ti for ti in client.task_instances(dag_id, run_id)}

    _wait("the first run to finish", lambda: run_state() in ("success", "failed"))
    index = {ti["rendered_map_index"]: m for (task, m), ti in tis().items() if task == DOWNLOAD}
    assert sorted(index) == VIDEOS
    ctx = Context.from_settings(scheduled.settings)

    def download(vid: str) -> dict:
        return tis()[(DOWNLOAD, index[vid])]

    retry_through_airflow(client, ctx, VIDEOS[0])
    # While the first retry's download runs (or is about to): the second.
    _wait("ov_0 to be taken up", lambda: download(VIDEOS[0])["state"] in ("queued", "running", "failed"), every=0.05)
    retry_through_airflow(client, ctx, VIDEOS[1])
    # While pack runs after the others finished: the third (pack is cleared while running).
    _wait("pack to run", lambda: tis()[("pack", -1)]["state"] in ("queued", "running"), every=0.05)
    retry_through_airflow(client, ctx, VIDEOS[2])
    # As the run is about to finish (its last video's chain just failed again): the fourth.
    _wait("ov_2 to fail again", lambda: download(VIDEOS[2])["try_number"] >= 2
          and download(VIDEOS[2])["state"] == "failed", every=0.02)
    retry_through_airflow(client, ctx, VIDEOS[3])

    _wait("the run to finish", lambda: run_state() in ("success", "failed"), timeout=400)
    time.sleep(3)  # a few scheduler loops: a run left with unscheduled tasks would stay so
    final = tis()
    assert run_state() == "failed"  # every video failed again: pack fails the run
    assert [k for k, ti in final.items() if ti["state"] is None] == []
    for vid in VIDEOS:
        ti = download(vid)
        assert ti["state"] == "failed" and ti["try_number"] >= 2, (vid, ti)  # each retry ran
    assert final[("pack", -1)]["state"] == "failed"
