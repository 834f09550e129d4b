"""Benchmark runs and every score in the state database: history and trends come from SQL."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import delete, select

from textbook.state import StateDB
from textbook.state.models import utcnow
from textbook.state.train_models import BenchmarkRunRow, BenchmarkScoreRow


def record(db: StateDB, run_id: str, models: list[dict[str, Any]], cfg: Any, scores: list[Any],
           heads: dict[str, Any], results_uri: str) -> None:
    """Write (or rewrite, on a rerun) the run and its scores."""
    config_hash = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    with db.session() as s:
        s.execute(delete(BenchmarkScoreRow).where(BenchmarkScoreRow.run_id == run_id))
        s.merge(BenchmarkRunRow(run_id=run_id, models=models, config_hash=config_hash, headline=heads,
                                results_uri=results_uri, started_at=utcnow(), finished_at=utcnow()))
        s.flush()
        for sc in scores:
            if sc.value is not None:
                s.add(BenchmarkScoreRow(run_id=run_id, model=sc.model, task=sc.task, shots=sc.shots, mode=sc.mode,
                                        metric=sc.metric, value=sc.value, stderr=sc.stderr, n=sc.n,
                                        scorer=sc.scorer, prompt_version=sc.prompt_version))


def scores(db: StateDB, run_id: str) -> list[BenchmarkScoreRow]:
    with db.session() as s:
        return list(s.scalars(select(BenchmarkScoreRow).where(BenchmarkScoreRow.run_id == run_id)
                              .order_by(BenchmarkScoreRow.id)))


def runs(db: StateDB) -> list[BenchmarkRunRow]:
    with db.session() as s:
        return list(s.scalars(select(BenchmarkRunRow).order_by(BenchmarkRunRow.started_at.desc())))
