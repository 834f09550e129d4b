"""Scheduling overhead of the distributed stack: the demo DAG on Celery versus the embedded run.

Starts the same loopback deployment as the integration test (tests/cluster.py: Postgres, Redis,
an S3 server, Airflow api-server + scheduler + dag-processor, Celery workers on default and gpu,
the model server), runs the demo knowledge point's DAG once, then runs the same videos on the
embedded default (one process, SQLite, local folder). Prints wall times and per-task overhead:
task instance duration minus the stage work inside it, and queued-to-start latency.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import start_cluster  # noqa: E402 - the tests' harness
from s3_server import start_s3  # noqa: E402

from textbook.collect import collect_and_run  # noqa: E402
from textbook.config import load_settings  # noqa: E402
from textbook.context import Context  # noqa: E402
from textbook.demo.job import DEMO_KP, prepare_course  # noqa: E402
from textbook.demo.serve import DemoServer  # noqa: E402
from textbook.tasks import TASK_PLAN, export  # noqa: E402

DAG_ID = "textbook__demo__intro__basics__lectures"


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        course = prepare_course(load_settings(environ={}, data_root=str(Path("data/bench").resolve())))
        with start_s3(root / "s3") as s3, DemoServer(course) as demo:
            bucket = s3.create_bucket("textbook")
            urls = root / "urls.txt"
            urls.write_text("\n".join(demo.urls()) + "\n")
            env = {"TEXTBOOK_SEARCH__SOURCE": "urls", "TEXTBOOK_SEARCH__URLS_FILE": str(urls)}
            up = time.monotonic()
            with start_cluster(root / "cluster", s3, bucket, env) as cluster:
                cluster.wait_for_dag(DAG_ID)
                ready = time.monotonic() - up
                client = cluster.client()
                client.trigger(DAG_ID, "bench-1")
                started = time.monotonic()
                state = cluster.wait_for_run(DAG_ID, "bench-1")
                celery_wall = time.monotonic() - started
                tis = client.task_instances(DAG_ID, "bench-1")
                os.environ.update(s3.env)
                stage_seconds = {}
                ctx = Context.from_settings(cluster.settings)
                for run in ctx.db.runs():
                    stage_seconds[(run.video_id, run.stage)] = run.seconds or 0.0
            settings = load_settings(environ={}, data_root=str(root / "embedded"),
                                     search={"source": "urls", "urls_file": str(urls)})
            embedded = Context.from_settings(settings)
            started = time.monotonic()
            collect_and_run(embedded, [embedded.taxonomy.get(DEMO_KP)], None)
            export(None, embedded)
            embedded_wall = time.monotonic() - started

    stages_of = {f"video.{t.task_id}": t.stages for t in TASK_PLAN}
    video_of = {}
    for ti in tis:
        if ti["task_id"] in stages_of and ti.get("rendered_map_index"):
            video_of[(ti["task_id"], ti["map_index"])] = ti["rendered_map_index"]
    overheads, latencies = [], []
    for ti in tis:
        if ti.get("duration") is None or ti["state"] != "success":
            continue
        work = 0.0
        if (ti["task_id"], ti["map_index"]) in video_of:
            vid = video_of[(ti["task_id"], ti["map_index"])]
            work = sum(stage_seconds.get((vid, s), 0.0) for s in stages_of[ti["task_id"]])
        overheads.append(ti["duration"] - work)
        queued, start = _when(ti.get("queued_when")), _when(ti.get("start_date"))
        if queued and start:
            latencies.append((start - queued).total_seconds())
    print("Scheduling overhead: demo DAG on Celery (2 workers + model server) vs the embedded run")
    print(f"  cluster start-up (db migrate, components, DAG parsed): {ready:6.1f} s")
    print(f"  demo DAG run on Celery ({state}):                       {celery_wall:6.1f} s wall, {len(tis)} task instances")
    print(f"  same videos, embedded (one process):                   {embedded_wall:6.1f} s wall")
    print(f"  ratio Celery / embedded:                               {celery_wall / embedded_wall:6.2f}x")
    if overheads:
        print(f"  per-task overhead (duration - stage work): median {statistics.median(overheads):.2f} s, "
              f"mean {statistics.mean(overheads):.2f} s over {len(overheads)} successful tasks")
    if latencies:
        print(f"  queued -> running latency: median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s")


if __name__ == "__main__":
    main()
