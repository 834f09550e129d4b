"""What `textbook retry` and `textbook backfill` do to a running Airflow, through its REST API.

Retry: a video is one map index of its knowledge point's DAG, labelled with the video id
(``rendered_map_index``). Its most recent run's failed task instance is cleared with everything
downstream (the rest of its chain, then ``pack``), so the scheduler reruns it from the failed
stage on; the stages before it, and the other videos' map indexes, are not touched. Retries that
overlap (a clear while an earlier one's tasks still run) are checked after each clear, see
``clear_confirmed``.

Backfill: every knowledge-point DAG of a subject is triggered once, at most ``max_active`` runs
of its DAGs queued or running at once, so a new subject of 200 knowledge points does not flood the
scheduler and the download pool. A paused DAG is unpaused only when its turn comes, its run taking
the schedule slot unpausing would start (see ``start_run``).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence

from textbook.airflow_api import AirflowApiError, AirflowClient
from textbook.context import Context
from textbook.tasks import TASK_PLAN
from textbook.taxonomy import TaxonomyLookupError

log = logging.getLogger(__name__)

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
    cleared = clear_confirmed(client, dag_id, run_id, [(first["task_id"], first["map_index"])])
    order = {f"video.{t.task_id}": n for n, t in enumerate(TASK_PLAN)}  # the chain's order, then pack
    cleared = sorted(cleared, key=lambda ti: (ti["map_index"] < 0, order.get(ti["task_id"], len(order))))
    return ClearedVideo(video_id, dag_id, run_id, first["task_id"], first["map_index"],
                        tuple(f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]
                              for ti in cleared))


def _key(ti: dict) -> tuple[str, int]:
    return ti["task_id"], ti["map_index"]


def clear_confirmed(client: AirflowClient, dag_id: str, run_id: str, targets: list[tuple[str, int]],
                    attempts: int = 3) -> list[dict]:
    """Clear ``targets`` with their downstream, then make sure the clear took: returns what was cleared.

    Airflow resets a run's state on a clear only when the run has finished. A clear that lands
    while the scheduler is deciding that a running run is finished (its earlier retry's last task
    just ended) loses: the scheduler read the task states before the clear, marks the run success
    or failed, and the cleared tasks stay without a state in a finished run, never scheduled. So
    after the clear, a finished run with any cleared task still stateless gets those cleared again:
    the run has finished now, so Airflow queues it again.
    """
    cleared = client.clear_task_instances(dag_id, run_id, list(targets), include_downstream=True, only_failed=False)
    wanted = {_key(ti) for ti in cleared}
    for _ in range(attempts):
        if client.dag_run(dag_id, run_id)["state"] not in FINISHED_RUN_STATES:
            return cleared
        lost = sorted(_key(ti) for ti in client.task_instances(dag_id, run_id)
                      if _key(ti) in wanted and ti["state"] is None)
        if not lost:
            return cleared  # finished after the cleared tasks ran again (a quick failure)
        log.warning("%s run %s finished as the clear landed, leaving %s unscheduled: clearing them again",
                    dag_id, run_id, ", ".join(f"{t}[{m}]" for t, m in lost))
        client.clear_task_instances(dag_id, run_id, lost, include_downstream=False, only_failed=False)
    raise RetryError(f"{dag_id} run {run_id} finished with cleared tasks left unscheduled after {attempts} clears; "
                     f"clear them in the grid")


@dataclass
class RetryReport:
    cleared: list[ClearedVideo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per video not retried, naming it


def retry_videos(client: AirflowClient, ctx: Context, video_ids: Sequence[str]) -> RetryReport:
    """Retry each video (``retry_through_airflow``); one that cannot be retried is reported and the
    others go on. An AirflowApiError (unreachable, refused) stops the lot: it would recur."""
    report = RetryReport()
    for vid in video_ids:
        try:
            report.cleared.append(retry_through_airflow(client, ctx, vid))
        except RetryError as exc:
            report.problems.append(str(exc))
    return report


@dataclass
class BackfillRun:
    dag_id: str
    run_id: str
    state: str


RUN_PREFIX = "textbook-backfill__"  # not "backfill__…": Airflow keeps run type prefixes for itself
ACTIVE_RUN_STATES = ["queued", "running"]


def _check_dags(client: AirflowClient, dag_ids: Sequence[str]) -> dict[str, dict]:
    """The DAGs as Airflow has them; refuse (naming them) when some are not in Airflow."""
    known = {d["dag_id"]: d for d in client.dags(os.path.commonprefix(list(dag_ids)))}
    missing = [d for d in dag_ids if d not in known]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise BackfillError(
            f"{len(missing)} of {len(dag_ids)} DAGs are not in Airflow yet (not parsed, or an import error): "
            f"{shown}. Wait for the dag-processor to parse dags/ (or run `airflow dags reserialize`), then "
            f"run the backfill again; nothing was triggered")
    return known


def _runs_by_dag(client: AirflowClient, dag_ids: Sequence[str], **filters: object) -> list[dict]:
    wanted = set(dag_ids)
    return [r for r in client.dag_runs(os.path.commonprefix(list(dag_ids)), **filters) if r["dag_id"] in wanted]


def _backfill_run_id(client: AirflowClient, dag_ids: Sequence[str], label: str,
                     fresh: bool) -> tuple[str, dict[str, str]]:
    """The run id of the backfill to go on with (the latest one of ``label`` while some of its DAGs
    have no finished run, else a new one) and the states of its runs so far, by DAG."""
    prefix = f"{RUN_PREFIX}{label}__"
    ours = [r for r in _runs_by_dag(client, dag_ids, run_id_prefix_pattern=prefix)
            if r["dag_run_id"].startswith(prefix)]
    if ours and not fresh:
        run_id = max(r["dag_run_id"] for r in ours)
        states = {r["dag_id"]: r["state"] for r in ours if r["dag_run_id"] == run_id}
        if any(states.get(d) not in FINISHED_RUN_STATES for d in dag_ids):
            return run_id, states
    return f"{prefix}{datetime.now(timezone.utc):%Y%m%dT%H%M%S}", {}


def _passed_slot(dag: dict) -> str | None:
    """The logical date of the run the scheduler creates as soon as the paused DAG is unpaused:
    with ``catchup=False`` its latest schedule slot that has passed. None when there is none."""
    run_after = dag.get("next_dagrun_run_after")
    if not dag["is_paused"] or not run_after or datetime.fromisoformat(run_after) > datetime.now(timezone.utc):
        return None
    return dag.get("next_dagrun_logical_date")


def start_run(client: AirflowClient, dag_id: str, run_id: str, note: str) -> bool:
    """Trigger the DAG's backfill run, then unpause the DAG if it is paused; True if it was.

    A paused DAG's run is never started, so a DAG is unpaused only when its turn comes. Unpausing
    makes the scheduler create at once the run of the schedule slot that passed; the backfill run
    takes that slot's logical date, so the scheduler finds the slot's run there and only moves the
    DAG's next run on to the next slot: one run, not two.
    """
    dag = client.dag(dag_id)
    slot = _passed_slot(dag)
    try:
        client.trigger(dag_id, run_id, note=note, logical_date=slot)
    except AirflowApiError as exc:
        if exc.status != 409 or slot is None:
            raise
        client.trigger(dag_id, run_id, note=note)  # the slot has its run already: none is made on unpause
    if dag["is_paused"]:
        client.set_paused(dag_id, False)
    return bool(dag["is_paused"])


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}h{whole // 60 % 60:02d}m" if whole >= 3600 else f"{whole // 60}m{whole % 60:02d}s"


@dataclass
class _Progress:
    """Finished runs against time, for the ETA: the rate of this invocation's finishes."""

    total: int
    finished_before: int
    started: float = field(default_factory=time.monotonic)
    finished_now: int = 0

    def line(self, active: int, waiting: int) -> str:
        done = self.finished_before + self.finished_now
        elapsed = time.monotonic() - self.started
        eta = (f"ETA {_duration((self.total - done) * elapsed / self.finished_now)}" if self.finished_now
               else "ETA after the first run finishes")
        return f"{done}/{self.total} finished, {active} running, {waiting} waiting; {_duration(elapsed)} elapsed, {eta}"


def backfill(client: AirflowClient, dag_ids: Sequence[str], *, label: str, max_active: int,
             poll_seconds: float = 10.0, timeout: float | None = None, fresh: bool = False,
             echo: Callable[[str], None] = print) -> list[BackfillRun]:
    """Run each DAG once, never more than ``max_active`` runs of these DAGs queued or running.

    Every queued or running run of the DAGs counts, the backfill's and any other (a DAG's own
    nightly run), so the limit holds whatever else runs. Resumable: run again after an
    interruption, it goes on with the same backfill (its run id), skipping DAGs whose run finished
    and waiting for those still running; ``fresh`` starts a new one. Returns every run with its
    final state; raises BackfillError after ``timeout`` seconds, saying what is left.
    """
    if max_active < 1:
        raise BackfillError(f"max_active must be at least 1, got {max_active}")
    if not dag_ids:
        raise BackfillError(f"{label}: no DAGs to backfill")
    known = _check_dags(client, dag_ids)
    run_id, states = _backfill_run_id(client, dag_ids, label, fresh)
    done = [BackfillRun(d, run_id, states[d]) for d in dag_ids if states.get(d) in FINISHED_RUN_STATES]
    active = {d: BackfillRun(d, run_id, state) for d, state in states.items() if state not in FINISHED_RUN_STATES}
    pending = deque(d for d in dag_ids if d not in states)
    for dag_id in active:  # interrupted between its trigger and its unpause
        if known[dag_id]["is_paused"]:
            client.set_paused(dag_id, False)
    total = len(dag_ids)
    progress = _Progress(total, len(done))
    if states:
        echo(f"resuming {run_id}: {len(done)} finished, {len(active)} queued or running, {len(pending)} to trigger")
    note = f"textbook backfill {label}"
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending or active:
        busy = len(_runs_by_dag(client, dag_ids, state=ACTIVE_RUN_STATES)) if pending else 0
        while pending and busy < max_active:
            dag_id = pending.popleft()
            unpaused = start_run(client, dag_id, run_id, note)
            active[dag_id] = BackfillRun(dag_id, run_id, "queued")
            busy += 1
            echo(f"triggered {total - len(pending)}/{total}: {dag_id}{' (unpaused)' if unpaused else ''}")
        if deadline is not None and time.monotonic() >= deadline:
            raise BackfillError(f"{label}: stopped waiting after {timeout:g} s: {len(done)} of {total} runs "
                                f"finished, {len(active)} still queued or running in Airflow "
                                f"(run id {run_id}), {len(pending)} not triggered; run the same command "
                                f"again to go on with this backfill")
        time.sleep(poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic())))
        for dag_id, run in list(active.items()):
            run.state = client.dag_run(dag_id, run.run_id)["state"]
            if run.state in FINISHED_RUN_STATES:
                done.append(active.pop(dag_id))
                progress.finished_now += 1
                echo(f"finished {dag_id}: {run.state}; {progress.line(len(active), len(pending))}")
    return done
