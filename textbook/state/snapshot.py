"""A video's published result: its final status and every stage run as it was when its chain
finished. The exporter reads only this, so a re-run in progress never changes the dataset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from textbook.state.models import StageRun

RUN_FIELDS = ("stage", "status", "attempts", "error", "config_hash", "artifacts", "result", "worker",
              "started_at", "finished_at", "seconds")
_TIMES = ("started_at", "finished_at")


def make_snapshot(status: str, reason: str, runs: Iterable[Run]) -> dict[str, Any]:
    return {"status": status, "reason": reason or "",
            "runs": [{f: (v.isoformat() if isinstance(v := getattr(r, f), datetime) else v) for f in RUN_FIELDS}
                     for r in runs]}


@dataclass(frozen=True)
class PublishedRun:
    """A stage run as a snapshot recorded it: StageRun's fields, read-only, without the ORM's
    bookkeeping (a compaction reads tens of thousands)."""

    video_id: str
    stage: str
    status: str
    attempts: int | None
    error: str | None
    config_hash: str | None
    artifacts: Any
    result: Any
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None


Run = StageRun | PublishedRun


def snapshot_runs(video_id: str, snapshot: dict[str, Any]) -> list[PublishedRun]:
    """The snapshot's stage runs, for code that reads runs."""
    out = []
    for item in snapshot.get("runs", []):
        values = {f: item.get(f) for f in RUN_FIELDS}
        for f in _TIMES:
            values[f] = datetime.fromisoformat(values[f]) if values[f] else None
        out.append(PublishedRun(video_id=video_id, **values))
    return out


def same_result(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Equal but for timings and attempt counts: republishing it would change nothing exported."""
    def essence(s: dict[str, Any] | None) -> Any:
        if s is None:
            return None
        return (s.get("status"), s.get("reason"),
                sorted((r["stage"], r["status"], r["config_hash"], repr(r["artifacts"]), repr(r["result"]))
                       for r in s.get("runs", [])))
    return essence(a) == essence(b)
