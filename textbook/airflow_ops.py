"""What `textbook retry` and `textbook backfill` do to a running Airflow, through its REST API.

Retry: a video is one map index of its knowledge point's DAG, labelled with the video id
(``rendered_map_index``). Its most recent run's failed task instance is cleared with everything
downstream (the rest of its chain, then ``pack``), so the scheduler reruns it from the failed
stage on; the stages before it are not touched.

Backfill: every knowledge-point DAG of a subject is unpaused and triggered, at most
``max_active`` of the backfill's runs queued or running at once, so a new subject of 200 knowledge
points does not flood the scheduler and the download pool.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from textbook.airflow_api import AirflowClient
from textbook.context import Context
from textbook.taxonomy import TaxonomyLookupError

# Task instance states in which Airflow will still run (or is running) the task.
ACTIVE_STATES = {None, "scheduled", "queued", "running", "restarting", "up_for_retry", "up_for_reschedule",
                 "deferred"}
FINISHED_RUN_STATES = {"success", "failed"}


class RetryError(RuntimeError):
    """The video cannot be retried through Airflow; the message says why."""


class BackfillError(RuntimeError):
    """The backfill cannot start or did not finish; the message says what is left."""


@dataclass(frozen=True)
class ClearedVideo:
    video_id: str
    dag_id: str
    run_id: str
    task_id: str  # the failed task it reruns from, e.g. video.download
    map_index: int
    cleared: tuple[str, ...]  # every task instance cleared, as task_id[map_index]


def video_dag_ids(ctx: Context, video_id: str) -> list[str]:
    """The DAGs of the knowledge points that found the video (those still in the taxonomy)."""
    out = []
    for link in ctx.db.links(video_id):
        try:
            out.append(ctx.taxonomy.get(link.kp_id).dag_id)
        except TaxonomyLookupError:
            continue  # the knowledge point left the taxonomy, and its DAG with it
    return out


def _when(ti: dict, field: str) -> datetime:
    value = ti.get(field)
    return datetime.fromisoformat(value) if value else datetime.min.replace(tzinfo=timezone.utc)


def latest_task_instances(client: AirflowClient, dag_ids: Sequence[str], video_id: str) -> list[dict]:
    """The video's task instances in the most recent run (over its DAGs) that mapped it.

    Only instances that started carry the label; the ones a failure left ``upstream_failed``
    never rendered it, and are reached by clearing downstream.
    """
    latest: list[dict] = []
    for dag_id in dag_ids:
        tis = [ti for ti in client.task_instances(dag_id, rendered_map_index_prefix_pattern=video_id)
               if ti["rendered_map_index"] == video_id]
        if not tis:
            continue
        newest = max(tis, key=lambda ti: _when(ti, "run_after"))
        if not latest or _when(newest, "run_after") > _when(latest[0], "run_after"):
            latest = [ti for ti in tis if ti["dag_run_id"] == newest["dag_run_id"]]
    return latest


def retry_through_airflow(client: AirflowClient, ctx: Context, video_id: str) -> ClearedVideo:
    """Clear the video's failed task and its downstream in its latest run."""
    if ctx.db.video(video_id) is None:
        raise RetryError(f"unknown video {video_id!r}")
    dag_ids = video_dag_ids(ctx, video_id)
    if not dag_ids:
        raise RetryError(f"{video_id}: no knowledge point of the taxonomy links to it, so no DAG runs it")
    tis = latest_task_instances(client, dag_ids, video_id)
    if not tis:
        raise RetryError(f"{video_id}: no task instance labelled {video_id!r} in {', '.join(dag_ids)}: "
                         f"it has not run under Airflow")
    dag_id, run_id = tis[0]["dag_id"], tis[0]["dag_run_id"]
    busy = [ti for ti in tis if ti["state"] in ACTIVE_STATES]
    if busy:
        states = ", ".join(f"{ti['task_id']} {ti['state'] or 'cleared'}" for ti in busy)
        raise RetryError(f"{video_id}: already rerunning in {dag_id} run {run_id} ({states})")
    failed = sorted((ti for ti in tis if ti["state"] == "failed"), key=lambda ti: _when(ti, "start_date"))
    if not failed:
        states = ", ".join(f"{ti['task_id']} {ti['state']}" for ti in tis)
        raise RetryError(f"{video_id}: nothing failed in its latest run ({dag_id} {run_id}: {states})")
    first = failed[0]
    cleared = client.clear_task_instances(dag_id, run_id, [(first["task_id"], first["map_index"])],
                                          include_downstream=True, only_failed=False)
    return ClearedVideo(video_id, dag_id, run_id, first["task_id"], first["map_index"],
                        tuple(f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]
                              for ti in cleared))


@dataclass
class BackfillRun:
    dag_id: str
    run_id: str
    state: str


def _check_dags(client: AirflowClient, dag_ids: Sequence[str]) -> list[str]:
    """Unpause the DAGs; refuse (naming them) when some are not in Airflow. Returns the unpaused."""
    known = {d["dag_id"]: d for d in client.dags(os.path.commonprefix(list(dag_ids)))}
    missing = [d for d in dag_ids if d not in known]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise BackfillError(
            f"{len(missing)} of {len(dag_ids)} DAGs are not in Airflow yet (not parsed, or an import error): "
            f"{shown}. Wait for the dag-processor to parse dags/ (or run `airflow dags reserialize`), then "
            f"run the backfill again; nothing was triggered")
    paused = [d for d in dag_ids if known[d]["is_paused"]]
    for dag_id in paused:
        client.set_paused(dag_id, False)
    return paused


def backfill(client: AirflowClient, dag_ids: Sequence[str], *, label: str, max_active: int,
             poll_seconds: float = 10.0, timeout: float | None = None,
             echo: Callable[[str], None] = print) -> list[BackfillRun]:
    """Trigger one run of each DAG, never more than ``max_active`` of them unfinished at once.

    Returns every run with its final state; raises BackfillError after ``timeout`` seconds,
    saying how many finished, are still running in Airflow, and were never triggered.
    """
    if max_active < 1:
        raise BackfillError(f"max_active must be at least 1, got {max_active}")
    if not dag_ids:
        raise BackfillError(f"{label}: no DAGs to backfill")
    paused = _check_dags(client, dag_ids)
    if paused:
        echo(f"unpaused {len(paused)} DAG(s)")
    # Not "backfill__…": Airflow keeps run ids starting with a run type ("backfill__", "manual__") for it.
    run_id = f"textbook-backfill__{label}__{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    total, pending = len(dag_ids), deque(dag_ids)
    active: dict[str, BackfillRun] = {}
    done: list[BackfillRun] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending or active:
        while pending and len(active) < max_active:
            dag_id = pending.popleft()
            client.trigger(dag_id, run_id, note=f"textbook backfill {label}")
            active[dag_id] = BackfillRun(dag_id, run_id, "queued")
            echo(f"triggered {total - len(pending)}/{total}: {dag_id}")
        if deadline is not None and time.monotonic() >= deadline:
            raise BackfillError(f"{label}: stopped waiting after {timeout:g} s: {len(done)} of {total} runs "
                                f"finished, {len(active)} still queued or running in Airflow "
                                f"(run id {run_id}), {len(pending)} not triggered")
        time.sleep(poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic())))
        for dag_id, run in list(active.items()):
            run.state = client.dag_run(dag_id, run.run_id)["state"]
            if run.state in FINISHED_RUN_STATES:
                done.append(active.pop(dag_id))
                echo(f"finished {len(done)}/{total}: {dag_id}: {run.state} "
                     f"({len(active)} running, {len(pending)} waiting)")
    return done
