"""Training runs in the state database: the skip rule (an unchanged corpus does not retrain) and
the lease (a redelivered or parallel task cannot start the same run twice)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from textbook.state import StateDB
from textbook.state.models import utcnow
from textbook.state.train_models import TrainRunRow

STALE_AFTER = timedelta(hours=6)  # a 'running' row not heartbeating for this long belongs to a dead task


class RunBusy(RuntimeError):
    """Another live task holds this run."""


def done_run(db: StateDB, run_key: str) -> TrainRunRow | None:
    with db.session() as s:
        row = s.get(TrainRunRow, run_key)
        return row if row is not None and row.status == "done" else None


def claim(db: StateDB, run_key: str, run_id: str, holder: str, **fields: Any) -> None:
    """Mark the run as held by ``holder``; the same holder (a retry of its task) may claim again."""
    now = utcnow()
    with db.session() as s:
        row = s.get(TrainRunRow, run_key)
        if row is None:
            s.add(TrainRunRow(run_key=run_key, run_id=run_id, status="running", holder=holder, started_at=now,
                              heartbeat_at=now, reason="", checkpoint_uri="", figures={}, **fields))
            return
    with db.session() as s:
        res = s.execute(update(TrainRunRow).where(
            TrainRunRow.run_key == run_key,
            (TrainRunRow.status != "running") | (TrainRunRow.holder == holder)
            | (TrainRunRow.heartbeat_at < now - STALE_AFTER),
        ).values(status="running", holder=holder, heartbeat_at=now, reason="", finished_at=None, **fields))
        if res.rowcount != 1:
            row = s.get(TrainRunRow, run_key)
            raise RunBusy(f"run {run_id} is held by {row.holder} (since {row.heartbeat_at:%Y-%m-%d %H:%M} UTC)")


def heartbeat(db: StateDB, run_key: str) -> None:
    """The holder is alive: a long run keeps its lease past ``STALE_AFTER``."""
    with db.session() as s:
        s.execute(update(TrainRunRow).where(TrainRunRow.run_key == run_key, TrainRunRow.status == "running")
                  .values(heartbeat_at=utcnow()))


def finish(db: StateDB, run_key: str, status: str, **fields: Any) -> None:
    with db.session() as s:
        s.execute(update(TrainRunRow).where(TrainRunRow.run_key == run_key)
                  .values(status=status, finished_at=utcnow(), heartbeat_at=utcnow(), **fields))


def runs(db: StateDB) -> list[TrainRunRow]:
    with db.session() as s:
        return list(s.scalars(select(TrainRunRow).order_by(TrainRunRow.started_at)))
