"""DAG params and the plugin's bulk retry, through a real api-server and real `airflow dags test` runs.

Knowledge point br.c.s.mixed is run on a local folder (the ``source``/``source_path`` params) of
two unreadable files, which fail, and one 4 s video, which a filter drops; br.c.s.other on a folder
of two unreadable files with ``limit: 1``. The plugin's "retry all failed of this knowledge point"
must clear exactly the failed videos' map indexes of mixed, nothing of its dropped video and
nothing of other.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from media_helpers import silence_wav, video_with_audio

from textbook.airflow_api import AirflowApiError
from textbook.cli import main
from textbook.context import Context
from textbook.demo.through_airflow import airflow
from textbook.status import airflow_task

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:03.500\nA very short hello.\n"

DOWNLOAD = airflow_task("download")  # the mapped task that downloads a video (metadata_download)


def _folder(root: Path, bad: list[str], short: str | None = None) -> Path:
    root.mkdir(parents=True)
    for name in bad:
        (root / f"{name}.mp4").write_bytes(b"not a video at all " * 64)
    if short:
        video_with_audio(root / f"{short}.mp4", silence_wav(root / "silence.wav", 4.0))
        (root / "silence.wav").unlink()
        (root / f"{short}.en.vtt").write_text(VTT)
    return root


def _dags_test(server, dag_id: str, conf: dict, name: str) -> tuple[int, str]:
    log = server.settings.data_path / "airflow" / f"dags-test-{name}.log"
    rc = airflow(["dags", "test", dag_id, "--conf", json.dumps(conf)], server.env, log, check=False)
    return rc, log.read_text()


def _states(client, dag_id: str) -> dict[tuple[str, str], tuple[str | None, int]]:
    """(task id, video id or '') -> (state, try number) in the DAG's only run. A map index is named
    by the label its download rendered (instances left upstream_failed never render one)."""
    [run] = client.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
    tis = client.task_instances(dag_id, run["dag_run_id"])
    label = {ti["map_index"]: ti["rendered_map_index"] for ti in tis if ti["task_id"] == DOWNLOAD}
    return {(ti["task_id"], label.get(ti["map_index"], "") if ti["map_index"] >= 0 else ""):
            (ti["state"], ti["try_number"]) for ti in tis}


@pytest.fixture(scope="module")
def runs(airflow_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("br")
    mixed, other = airflow_server.dag_id("br", "mixed"), airflow_server.dag_id("br", "other")
    ctx = Context.from_settings(airflow_server.settings)

    # A dry run first: it plans, and searches, runs and packs nothing.
    rc, log = _dags_test(airflow_server, other, {"dry_run": True, "source": "local",
                                                 "source_path": str(_folder(root / "other", ["o_one", "o_two"]))},
                         "dry")
    assert rc == 0, log[-3000:]
    assert "dry run of br.c.s.other: nothing is searched or run; a real run would search local" in log
    assert "0 of the 0 known videos would run" in log
    assert ctx.db.videos(kp_ids=["br.c.s.other"]) == []
    assert "dry run: nothing was run, so nothing is packed" in log
    client = airflow_server.client()
    [dry] = client.call("GET", f"/api/v2/dags/{other}/dagRuns")["dag_runs"]
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in client.task_instances(other, dry["dag_run_id"])}
    assert states.pop(("search", -1)) == "success" and states.pop(("pack", -1)) == "skipped"
    assert set(states.values()) == {"skipped"} and {i for _, i in states} == {-1}  # no video mapped
    client.call("DELETE", f"/api/v2/dags/{other}/dagRuns/{dry['dag_run_id']}")

    rc, log = _dags_test(airflow_server, other, {"limit": 1, "source": "local", "source_path": str(root / "other")},
                         "other")
    assert rc != 0 and "every video of this run failed (1)" in log  # limit 1: one of the two files
    rc, log = _dags_test(airflow_server, mixed, {"source": "local", "source_path": str(
        _folder(root / "mixed", ["m_bad1", "m_bad2"], short="m_short"))}, "mixed")
    assert rc == 0, log[-3000:]  # one video was not failed: the run succeeds
    return ctx, mixed, other


def _post(server, path: str, fields: list[tuple[str, str]], token: str, origin: str | None = None):
    request = urllib.request.Request(server.url + path, data=urllib.parse.urlencode(fields).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    if origin:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def test_params_limit_and_source_are_honoured(airflow_server, runs):
    ctx, mixed, other = runs
    assert {row.video_id: row.status for row in ctx.db.videos(kp_ids=["br.c.s.mixed"])} == {
        "m_bad1": "failed", "m_bad2": "failed", "m_short": "filtered"}
    assert [row.video_id for row in ctx.db.videos(kp_ids=["br.c.s.other"])] == ["o_one"]  # limit 1
    downloads = [k for k in _states(airflow_server.client(), other) if k[0] == DOWNLOAD]
    assert downloads == [(DOWNLOAD, "o_one")]


@pytest.mark.slow
def test_a_bad_param_is_refused_by_airflow(airflow_server, runs):
    client = airflow_server.client()
    _, mixed, _ = runs
    for conf, what in (({"limit": 0}, "limit"), ({"force_stage": "nope"}, "force_stage"),
                       ({"source": "ftp"}, "source"), ({"dry_run": "yes"}, "dry_run")):
        with pytest.raises(AirflowApiError, match="HTTP 400") as refused:
            client.call("POST", f"/api/v2/dags/{mixed}/dagRuns", body={"logical_date": None, "conf": conf})
        assert what in refused.value.detail, refused.value.detail
    assert len(client.call("GET", f"/api/v2/dags/{mixed}/dagRuns")["dag_runs"]) == 1  # no run was created


@pytest.mark.slow
def test_plugin_bulk_retry_reruns_exactly_the_failed_videos_of_a_knowledge_point(airflow_server, runs):
    ctx, mixed, other = runs
    client = airflow_server.client()
    before_mixed, before_other = _states(client, mixed), _states(client, other)
    page = urllib.request.urlopen(urllib.request.Request(
        f"{airflow_server.url}/textbook/kps/br.c.s.mixed", headers={"Authorization": f"Bearer {client.token()}"}),
        timeout=60).read().decode()
    assert "Retry all 2 failed" in page and "Retry 2 × corrupt" in page

    viewer = airflow_server.client("viewer").token()
    status, body = _post(airflow_server, "/textbook/retry", [("all", "1"), ("kp", "br.c.s.mixed")], viewer)
    assert status == 403 and "clearTaskInstances: HTTP 403" in body  # Airflow refused the viewer itself
    status, _ = _post(airflow_server, "/textbook/retry", [("all", "1")], client.token(), origin="http://evil.example")
    assert status == 403
    assert _states(client, mixed) == before_mixed

    status, page = _post(airflow_server, "/textbook/retry",
                         [("all", "1"), ("kp", "br.c.s.mixed"), ("category", "corrupt")], client.token())
    assert status == 200, page
    assert "Retried 2 video(s) of" in page and "m_bad1" in page and "m_bad2" in page and "Not retried" not in page
    after = _states(client, mixed)
    changed = {k for k in after if after[k] != before_mixed[k]}
    chain = {k for k in after if k[0].startswith("video.")}
    assert changed == {k for k in chain if k[1] in ("m_bad1", "m_bad2")} | {("pack", "")}
    assert all(after[k][0] is None for k in changed)  # cleared: the scheduler runs them again
    assert all(after[k] == before_mixed[k] for k in chain if k[1] == "m_short")  # the dropped one: untouched
    assert _states(client, other) == before_other  # another knowledge point's failures: untouched

    # Per video, on the other knowledge point; a video already being retried is reported, not cleared twice.
    status, page = _post(airflow_server, "/textbook/retry", [("video_id", "o_one"), ("video_id", "m_bad1")],
                         client.token())
    assert status == 200 and "Retried 1 video(s)" in page and "m_bad1: already rerunning" in page
    assert _states(client, other)[(DOWNLOAD, "o_one")][0] is None


@pytest.mark.slow
def test_cli_retry_failed_selects_by_knowledge_point_and_reason(airflow_server, runs, monkeypatch, capsys):
    from test_airflow_api import _cli_env

    _cli_env(airflow_server, monkeypatch)
    assert main(["retry", "--failed", "--reason", "nope"]) == 1
    assert "--reason: unknown failure category 'nope'" in capsys.readouterr().err
    assert main(["retry", "--failed", "--kp", "br.c.s.mixed", "--reason", "network"]) == 1
    assert "no failed video matches --reason network" in capsys.readouterr().err
    # After the plugin's retries (the test before): each is found and reported as already rerunning.
    assert main(["retry", "--failed", "--subject", "br", "--reason", "corrupt"]) == 1
    err = capsys.readouterr().err
    assert all(f"{vid}: already rerunning" in err for vid in ("m_bad1", "m_bad2", "o_one")), err
    assert main(["retry", "m_bad1", "--kp", "br.c.s.mixed"]) == 1
    assert "select with --failed only" in capsys.readouterr().err
