"""The demo knowledge point's DAG, then the compaction DAG, under real Airflow (`airflow dags
test`, SQLite metadata).

First run: one lecture's page answers HTTP 500 every time, so that video fails while every other
video finishes (or is filtered). Second run: the server is healthy; only the failed video is
processed again, from its failed stage, and nothing else does any stage work. Third: a dead night.
"""

from __future__ import annotations

import json

import pytest
from airflow_server import free_port

from textbook.config import load_settings
from textbook.context import Context
from textbook.demo.job import DEMO_KP, prepare_course
from textbook.demo.serve import DemoServer
from textbook.demo.through_airflow import dag_test
from textbook.export import validate_dataset

from export_helpers import snapshot

pytestmark = pytest.mark.slow
BROKEN = "prob_dice04"



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    settings = load_settings(environ={}, data_root=str(tmp_path_factory.mktemp("airflow-demo")))
    course = prepare_course(settings)
    urls = settings.data_path / "demo-urls.txt"
    env = {"TEXTBOOK_SEARCH__SOURCE": "urls", "TEXTBOOK_SEARCH__URLS_FILE": str(urls),
           "TEXTBOOK_DAGS__RETRIES": "0", "TEXTBOOK_DOWNLOAD__RETRIES": "0"}
    port = free_port()
    ctx = Context.from_settings(settings.replace(search={"source": "urls", "urls_file": str(urls)}))
    with DemoServer(course, port=port) as server:
        urls.write_text("\n".join(server.urls()) + "\n")
        server.fail(server.page_url(BROKEN), times=1000)
        first_rc, log = dag_test(settings, DEMO_KP, env)
    assert dag_test(settings, None, env)[0] == 0
    first = {row.video_id: (row.status, row.reason) for row in ctx.db.videos()}
    attempts = {(r.video_id, r.stage): r.attempts for r in ctx.db.runs()}
    with DemoServer(course, port=port) as server:
        second_rc, _ = dag_test(settings, DEMO_KP, env)
    assert dag_test(settings, None, env)[0] == 0
    second = (second_rc, {row.video_id: row.status for row in ctx.db.videos()},
              {(r.video_id, r.stage): r.attempts for r in ctx.db.runs()})
    # A night with the source unreachable and work to do (max_height changed: every video must be
    # downloaded again), the server down.
    before = snapshot(settings.export_root)
    third_rc, _ = dag_test(settings, DEMO_KP, {**env, "TEXTBOOK_DOWNLOAD__MAX_HEIGHT": "480"})
    compaction_rc, compaction_log = dag_test(settings, None, env)  # the night's compaction still runs
    assert compaction_rc == 0 and "the dataset did not change: no corpus event" in compaction_log.read_text()
    night = (third_rc, before, snapshot(settings.export_root))
    return settings, ctx, first_rc, first, attempts, second, log, night


def test_failed_url_fails_only_its_video(runs):
    _, _, first_rc, first, _, _, log, _ = runs
    assert first[BROKEN][0] == "failed"
    assert "download" in first[BROKEN][1] and "http_500" in first[BROKEN][1]
    others = {vid: status for vid, (status, _) in first.items() if vid != BROKEN}
    assert sorted(others.values()) == ["done", "done", "done", "done", "filtered", "filtered"]
    # A failed video does not fail the collection: pack still runs and the run succeeds, while the
    # video's task instance is failed in the grid (and in `textbook status`), ready to be cleared.
    assert first_rc == 0
    text = log.read_text().split("$ airflow dags test")[1]  # the first run's part of the log
    assert text.count("new_state=failed") == 1
    assert "rendered_map_index='calc-deriv01'" in text  # map indexes carry video ids


def test_second_run_retries_the_failed_video_only(runs):
    _, _, _, _, attempts, (second_rc, statuses, now), _, _ = runs
    assert second_rc == 0
    assert statuses[BROKEN] == "done"
    changed = {key for key in now if now[key] != attempts.get(key)}
    assert changed and {vid for vid, _ in changed} == {BROKEN}
    assert now[(BROKEN, "download")] == 2  # failed once, then succeeded


def test_pack_writes_a_valid_dataset_and_report(runs):
    settings = runs[0]
    root = settings.export_root
    assert validate_dataset(root) == []
    lines = [json.loads(line) for line in (root / "videos.jsonl").read_text().splitlines()]
    assert sum(1 for r in lines if r.get("status") == "done") == 5
    assert (root / "report" / "index.html").is_file()
    assert (root / "report" / "videos" / f"{BROKEN}.html").is_file()


def test_pack_and_compaction_emit_their_asset_events_with_counts(runs):
    import sqlite3

    settings = runs[0]
    with sqlite3.connect(settings.data_path / "airflow" / "airflow.db") as db:
        events = db.execute("SELECT a.name, a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                            "ORDER BY e.id").fetchall()
    # one of each per changed night: the failed-video run and the retry run, not the dead night
    assert [name for name, _, _ in events] == ["textbook_parts", "textbook_corpus"] * 2
    parts = [json.loads(extra) for name, _, extra in events if name == "textbook_parts"]
    assert parts[0]["kp"] == DEMO_KP and parts[0]["rebuilt"] == parts[0]["videos"] == 7
    assert parts[1]["rebuilt"] >= 1 and parts[1]["written"] >= 1  # the retried video's part
    name, uri, extra = events[-1]
    assert uri == settings.export_root.as_uri()
    root = settings.export_root
    records = [json.loads(line) for line in (root / "videos.jsonl").read_text().splitlines()]
    samples = sum(len(p.read_text().splitlines()) for p in (root / "obelics").glob("part-*.jsonl"))
    images = sum(1 for p in (root / "images").rglob("*.jpg"))
    assert json.loads(extra) == {"samples": samples, "images": images, "videos": sum(r["exported"] for r in records)}
    assert samples >= 1 and images >= 20


def test_a_night_with_the_source_unreachable_fails_and_leaves_the_dataset_byte_identical(runs):
    settings, _, _, _, _, _, log, (rc, before, after) = runs
    assert rc != 0  # the DAG run failed
    assert after == before
    text = log.read_text().split("$ airflow dags test")[-1]
    assert "every video of this run failed (7)" in text and "network" in text
