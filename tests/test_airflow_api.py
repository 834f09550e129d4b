"""`textbook retry` and `textbook backfill` through a real Airflow api-server's REST API.

The retry tests clear task instances of a real DAG run: `airflow dags test` of a knowledge point
whose two URLs refuse connections, so both videos fail at download and their chains end
upstream_failed. The backfill tests trigger real runs; with no scheduler they stay queued, and
the test plays the scheduler by marking them finished through the API.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import jwt
import pytest
from airflow_server import USERS, free_port

from textbook import status
from textbook.airflow_api import AirflowApiError, AirflowClient
from textbook.airflow_ops import BackfillError, RetryError, backfill, retry_through_airflow
from textbook.cli import main
from textbook.config import ConfigError, load_settings
from textbook.context import Context
from textbook.demo.through_airflow import airflow
from textbook.records import Video
from textbook.tasks import TASK_PLAN

CHAIN = [f"video.{t.task_id}" for t in TASK_PLAN]
DOWNLOAD = CHAIN[0]  # the task that downloads (after the metadata filter, in the same task)


# -- without a server -------------------------------------------------------------------------

def test_settings_name_what_is_missing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_API_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="airflow.api_url is not set"):
        AirflowClient.from_settings(load_settings(environ={}))
    with pytest.raises(ConfigError, match="airflow.username"):
        AirflowClient.from_settings(load_settings(environ={"TEXTBOOK_AIRFLOW__API_URL": "http://x:8080"}))
    cfg = load_settings(environ={"TEXTBOOK_AIRFLOW__API_URL": "http://x:8080", "TEXTBOOK_AIRFLOW__USERNAME": "me"})
    with pytest.raises(ConfigError, match="AIRFLOW_API_PASSWORD"):
        AirflowClient.from_settings(cfg)
    with pytest.raises(ConfigError, match="expected an http"):
        AirflowClient("x:8080", "me", "pw")


def test_unreachable_server_is_named():
    client = AirflowClient(f"http://127.0.0.1:{free_port()}", "me", "pw", timeout=5)
    with pytest.raises(AirflowApiError, match=r"POST /auth/token: unreachable: .*airflow.api_url is http://127"):
        client.dags("textbook__")


def test_cli_retry_without_airflow_stays_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEXTBOOK_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("TEXTBOOK_AIRFLOW__API_URL", raising=False)
    ctx = Context.from_settings(load_settings())
    ctx.db.add_video(Video("done_one", "https://example.org/v"))
    ctx.db.set_video_status("done_one", "done")
    assert main(["retry", "done_one"]) == 0
    assert "done, nothing to retry" in capsys.readouterr().out


# -- against the api-server --------------------------------------------------------------------

@pytest.mark.slow
def test_token_auth(airflow_server):
    client = airflow_server.client()
    assert client.token().count(".") == 2  # a JWT from POST /auth/token
    assert any(d["dag_id"] == airflow_server.dag_id("bt", "one") for d in client.dags("textbook__bt__"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{airflow_server.url}/api/v2/dags", timeout=10)
    assert refused.value.code == 401
    with pytest.raises(AirflowApiError, match="POST /auth/token: HTTP 401: Invalid credentials"):
        AirflowClient(airflow_server.url, "admin", "wrong").dags("textbook__")


@pytest.mark.slow
def test_expired_token_is_renewed(airflow_server):
    client = airflow_server.client()
    now = int(time.time())
    client._token = jwt.encode(  # what Airflow signs, an hour past its expiry
        {"sub": "admin", "role": "admin", "teams": [], "jti": "x", "aud": "apache-airflow", "nbf": now - 7200,
         "iat": now - 7200, "exp": now - 3600},
        airflow_server.env["AIRFLOW__API_AUTH__JWT_SECRET"], algorithm="HS512", headers={"kid": "not-used"})
    expired = client._token
    assert client.dags("textbook__bt__")
    assert client._token != expired


@pytest.fixture(scope="module")
def failed_run(airflow_server):
    """A real run of the rt knowledge point's DAG in which both videos failed at download."""
    dag_id = airflow_server.dag_id("rt", "lectures")
    log = airflow_server.settings.data_path / "airflow" / "dags-test.log"
    started = time.monotonic()
    # every video failed: pack fails the run with the reasons (and emits no corpus event)
    assert airflow(["dags", "test", dag_id], airflow_server.env, log, check=False) != 0
    assert "every video of this run failed (2)" in log.read_text()
    print(f"\nairflow dags test: {time.monotonic() - started:.1f} s")
    ctx = Context.from_settings(airflow_server.settings)
    assert {row.video_id: row.status for row in ctx.db.videos(kp_ids=["rt.c.s.lectures"])} == {
        "rt_first": "failed", "rt_second": "failed"}
    return dag_id, ctx


@pytest.mark.slow
def test_retry_clears_the_failed_task_and_its_downstream(airflow_server, failed_run):
    dag_id, ctx = failed_run
    client = airflow_server.client()
    # The plugin tells a person to clear the very task the API finds failed.
    assert status.video_state(ctx, "rt_first").failed.task_id == DOWNLOAD

    done = retry_through_airflow(client, ctx, "rt_first")
    assert (done.dag_id, done.task_id) == (dag_id, DOWNLOAD)
    m = done.map_index
    assert set(done.cleared) == {f"{task}[{m}]" for task in CHAIN} | {"pack"}

    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in client.task_instances(dag_id, done.run_id)}
    assert [states[(task, m)] for task in CHAIN] == [None] * len(CHAIN)  # to be scheduled again
    assert states[("pack", -1)] is None
    assert states[("search", -1)] == "success"  # upstream of the failure: untouched
    other = 1 - m  # the other video keeps its failure until someone retries it
    assert states[(DOWNLOAD, other)] == "failed"
    assert {states[(task, other)] for task in CHAIN[1:]} == {"upstream_failed"}
    assert client.dag_run(dag_id, done.run_id)["state"] == "queued"

    with pytest.raises(RetryError, match=rf"rt_first: already rerunning in .* \({DOWNLOAD} cleared\)"):
        retry_through_airflow(client, ctx, "rt_first")


def _cli_env(airflow_server, monkeypatch) -> None:
    """The CLI's environment: the server's TEXTBOOK_* settings and the admin's REST API login."""
    for key, value in airflow_server.env.items():
        if key.startswith("TEXTBOOK_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("TEXTBOOK_AIRFLOW__API_URL", airflow_server.url)
    monkeypatch.setenv("TEXTBOOK_AIRFLOW__USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_API_PASSWORD", USERS["admin"][1])


@pytest.mark.slow
def test_cli_retry_goes_through_the_api(airflow_server, failed_run, monkeypatch, capsys):
    dag_id, ctx = failed_run
    _cli_env(airflow_server, monkeypatch)
    ctx.db.add_video(Video("rt_never", "https://example.org/never"), "rt.c.s.lectures")

    assert main(["retry", "rt_second"]) == 0
    assert f"rt_second: cleared {DOWNLOAD} and downstream in {dag_id}" in capsys.readouterr().out
    assert main(["retry", "rt_second", "rt_never", "nope"]) == 1
    err = capsys.readouterr().err
    assert "rt_second: already rerunning" in err
    assert "rt_never: no task instance labelled 'rt_never'" in err and "it has not run under Airflow" in err
    assert "unknown video 'nope'" in err

    monkeypatch.setenv("AIRFLOW_API_PASSWORD", "wrong")
    assert main(["retry", "rt_first"]) == 1
    assert "POST /auth/token: HTTP 401: Invalid credentials" in capsys.readouterr().err


def _backfill_runs(client: AirflowClient, dag_ids: list[str], prefix: str) -> list[dict]:
    return [run for dag_id in dag_ids
            for run in client.call("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                   {"run_id_prefix_pattern": prefix, "limit": 100})["dag_runs"]
            if run["dag_run_id"].startswith(prefix)]


@pytest.mark.slow
def test_backfill_keeps_at_most_max_active_runs_unfinished(airflow_server):
    client = airflow_server.client()
    dag_ids = [airflow_server.dag_id("bt", kp) for kp in ("one", "two", "three")]
    prefix = "textbook-backfill__bt__"
    seen: list[int] = []
    stop = threading.Event()

    def scheduler() -> None:
        """Finish one queued run of the backfill per tick, noting how many were unfinished."""
        me = airflow_server.client()
        while not stop.is_set():
            queued = [r for r in _backfill_runs(me, dag_ids, prefix) if r["state"] == "queued"]
            seen.append(len(queued))
            if queued:
                me.call("PATCH", f"/api/v2/dags/{queued[0]['dag_id']}/dagRuns/{queued[0]['dag_run_id']}",
                        body={"state": "success"})
            stop.wait(0.5)

    lines: list[str] = []
    thread = threading.Thread(target=scheduler, daemon=True)
    thread.start()
    try:
        runs = backfill(client, dag_ids, label="bt", max_active=2, poll_seconds=0.2, timeout=120,
                        echo=lines.append)
    finally:
        stop.set()
        thread.join()
    assert sorted(r.dag_id for r in runs) == sorted(dag_ids)
    assert {r.state for r in runs} == {"success"}
    assert max(seen) == 2  # the throttle held: never three runs of the backfill at once
    triggered = [line for line in lines if line.startswith("triggered")]
    assert len(triggered) == 3 and all(line.endswith("(unpaused)") for line in triggered)  # each at its turn
    assert "3/3 finished, 0 running, 0 waiting" in lines[-1] and "ETA" in lines[-1]
    assert not any(d["is_paused"] for d in client.dags("textbook__bt__") if d["dag_id"] in dag_ids)


@pytest.mark.slow
def test_an_interrupted_backfill_goes_on_where_it_stopped(airflow_server):
    """The second invocation finds the first's runs by run id: it triggers only the DAG left."""
    client = airflow_server.client()
    dag_ids = [airflow_server.dag_id("bt", kp) for kp in ("one", "two", "three")]
    with pytest.raises(BackfillError, match="run the same command again"):
        backfill(client, dag_ids, label="bt-resume", max_active=2, poll_seconds=0.2, timeout=1, echo=lambda _: None)
    first = _backfill_runs(client, dag_ids, "textbook-backfill__bt-resume__")
    assert len(first) == 2 and {r["state"] for r in first} == {"queued"}
    client.call("PATCH", f"/api/v2/dags/{first[0]['dag_id']}/dagRuns/{first[0]['dag_run_id']}",
                body={"state": "success"})
    lines: list[str] = []
    with pytest.raises(BackfillError, match="1 of 3 runs finished, 2 still queued"):
        backfill(client, dag_ids, label="bt-resume", max_active=2, poll_seconds=0.2, timeout=1, echo=lines.append)
    assert lines[0].endswith(": 1 finished, 1 queued or running, 1 to trigger")
    again = _backfill_runs(client, dag_ids, "textbook-backfill__bt-resume__")
    assert len(again) == 3 and {r["dag_run_id"] for r in again} == {first[0]["dag_run_id"]}  # one backfill
    for run in (r for r in again if r["state"] == "queued"):  # leave nothing queued for the tests after this one
        client.call("PATCH", f"/api/v2/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}", body={"state": "success"})


@pytest.mark.slow
def test_backfill_refuses_dags_not_parsed(airflow_server):
    client = airflow_server.client()
    missing = airflow_server.dag_id("bt", "four")
    with pytest.raises(BackfillError, match=f"1 of 2 DAGs are not in Airflow yet .*: {missing}.*nothing was triggered"):
        backfill(client, [airflow_server.dag_id("bt", "one"), missing], label="bt-missing", max_active=1)
    assert not _backfill_runs(client, [airflow_server.dag_id("bt", "one")], "textbook-backfill__bt-missing__")


@pytest.mark.slow
def test_cli_backfill_stops_waiting_at_the_timeout(airflow_server, monkeypatch, capsys):
    _cli_env(airflow_server, monkeypatch)
    started = time.monotonic()
    assert main(["backfill", "--subject", "bt", "--max-active", "1", "--poll", "0.2", "--timeout", "1.5"]) == 1
    assert time.monotonic() - started < 15
    out, err = capsys.readouterr()
    assert "at most 1 runs at once" in out and "triggered 1/3" in out and "triggered 2/3" not in out
    assert "stopped waiting after 1.5 s: 0 of 3 runs finished, 1 still queued or running" in err
    assert "2 not triggered" in err
    dag_ids = [airflow_server.dag_id("bt", kp) for kp in ("one", "two", "three")]
    queued = [r for r in _backfill_runs(airflow_server.client(), dag_ids, "textbook-backfill__bt__")
              if r["state"] == "queued"]
    assert len(queued) == 1  # nothing runs it: no scheduler in this test
