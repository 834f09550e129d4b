"""The demo knowledge point on the distributed stack, real services only.

Postgres (metadata and our state, through the ``textbook_db`` connection), Redis, an S3 server,
Airflow api-server + scheduler + dag-processor, Celery workers on queues ``default`` and ``gpu``
(the latter beside the model server). One lecture's page fails on its first request, so its
download fails; it is cleared through the REST API (what `textbook retry` does) and succeeds.
Then: every video is in a terminal state, every recorded artifact is in S3 with its checksum, and
the dataset equals the one the embedded default writes from the same input.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest
from cluster import start_cluster
from s3_server import start_s3

from textbook.airflow_ops import retry_through_airflow
from textbook.config import load_settings
from textbook.context import Context
from textbook.collect import collect_and_run
from textbook.demo.job import DEMO_KP, prepare_course
from textbook.demo.through_airflow import COMPACTION_DAG
from textbook.demo.serve import DemoServer
from textbook.tasks import export

pytestmark = pytest.mark.slow
BROKEN = "prob_dice04"
DAG_ID = "textbook__demo__intro__basics__lectures"
COMPARED = ("obelics", "clips", "videos.jsonl")


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for name in COMPARED:
        path = root / name
        for p in sorted([path] if path.is_file() else path.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    course = prepare_course(load_settings(environ={}, data_root=str(root / "course")))
    with start_s3(root / "s3") as s3, DemoServer(course) as demo:
        bucket = s3.create_bucket("textbook")
        urls = root / "urls.txt"
        urls.write_text("\n".join(demo.urls()) + "\n")
        demo.fail(demo.page_url(BROKEN), times=1)
        env = {"TEXTBOOK_SEARCH__SOURCE": "urls", "TEXTBOOK_SEARCH__URLS_FILE": str(urls),
               "TEXTBOOK_DAGS__RETRIES": "0", "TEXTBOOK_DOWNLOAD__RETRIES": "0"}
        with start_cluster(root / "cluster", s3, bucket, env) as cluster:
            cluster.wait_for_dag(DAG_ID)
            client = cluster.client()
            client.trigger(DAG_ID, "it-1")
            first = cluster.wait_for_run(DAG_ID, "it-1")
            saved = {k: os.environ.get(k) for k in s3.env}
            os.environ.update(s3.env)  # this process reads our state and bucket like a worker does
            try:
                ctx = Context.from_settings(cluster.settings)
                after_first = {row.video_id: row.status for row in ctx.db.videos()}
                cleared = retry_through_airflow(client, ctx, BROKEN)
                second = cluster.wait_for_run(DAG_ID, "it-1")
                cluster.wait_for_dag(COMPACTION_DAG)  # the knowledge point packed its parts: now the dataset
                client.trigger(COMPACTION_DAG, "compact-1")
                assert cluster.wait_for_run(COMPACTION_DAG, "compact-1") == "success"
                yield {"ctx": ctx, "first": first, "after_first": after_first, "cleared": cleared,
                       "second": second, "cluster": cluster, "s3": s3, "bucket": bucket, "demo": demo,
                       "urls": urls, "root": root}
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_one_video_fails_then_succeeds_after_a_clear_through_the_api(cluster_run):
    assert cluster_run["after_first"][BROKEN] == "failed"
    others = sorted(s for v, s in cluster_run["after_first"].items() if v != BROKEN)
    assert others == ["done", "done", "done", "done", "filtered", "filtered"]
    assert cluster_run["cleared"].dag_id == DAG_ID
    assert cluster_run["second"] == "success"
    final = {row.video_id: row.status for row in cluster_run["ctx"].db.videos()}
    assert sorted(final.values()) == ["done"] * 5 + ["filtered"] * 2
    runs = {(r.video_id, r.stage): r.attempts for r in cluster_run["ctx"].db.runs()}
    assert runs[(BROKEN, "download")] == 2
    assert all(n == 1 for (vid, _), n in runs.items() if vid != BROKEN)  # the others were not redone


def test_every_recorded_artifact_is_in_s3_with_its_checksum(cluster_run):
    ctx = cluster_run["ctx"]
    store = ctx.store
    recorded = [a for run in ctx.db.runs() for a in run.artifacts]
    assert len(recorded) > 50
    for artifact in recorded:
        assert store.checksum(artifact["key"]) == artifact["sha256"], artifact["key"]


def test_model_stages_ran_in_the_model_server_each_model_loaded_once(cluster_run):
    stats = json.load(urllib.request.urlopen(f"{cluster_run['cluster'].model_server_url}/stats"))
    assert stats["requests"] >= 3 * 4  # audio_transcript, filters_refine, visual_filter for each kept lecture
    assert stats["backend_builds"] and set(stats["backend_builds"].values()) == {1}


def test_dataset_in_s3_equals_the_embedded_default(cluster_run, tmp_path):
    s3 = cluster_run["s3"]
    client = s3.client()
    remote = tmp_path / "remote"
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=cluster_run["bucket"], Prefix="dataset/") for o in page.get("Contents", [])]
    for key in keys:
        target = remote / key.removeprefix("dataset/")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(cluster_run["bucket"], key, str(target))
    # the embedded default (SQLite, local folder, one process) on the same served course
    settings = load_settings(environ={}, data_root=str(tmp_path / "embedded"),
                             search={"source": "urls", "urls_file": str(cluster_run["urls"])})
    embedded = Context.from_settings(settings)
    collect_and_run(embedded, [embedded.taxonomy.get(DEMO_KP)], None)
    local = Path(export(None, embedded)["root"])
    assert _files(remote) == _files(local)
    assert sorted(p.relative_to(local).as_posix() for p in (local / "images").rglob("*.jpg")) == sorted(
        p.relative_to(remote).as_posix() for p in (remote / "images").rglob("*.jpg"))


def test_the_state_database_is_postgres_through_the_connection(cluster_run):
    ctx = cluster_run["ctx"]
    assert ctx.db.engine.dialect.name == "postgresql"
    assert [link.kp_id for link in ctx.db.links(BROKEN)] == [DEMO_KP]
