"""Tables of the downstream DAGs: training runs, benchmark runs and their scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from textbook.state.models import Base, utcnow


class TrainRunRow(Base):
    """One continual-pretraining run: a corpus fingerprint and a training config (its ``run_key``)."""

    __tablename__ = "train_runs"

    run_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128), unique=True)
    preset: Mapped[str] = mapped_column(String(64), default="")
    corpus_uri: Mapped[str] = mapped_column(Text, default="")
    corpus_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    # running | done | skipped | failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    holder: Mapped[str] = mapped_column(String(300), default="")  # who runs it (the lease)
    reason: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_seen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images_seen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    final_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoint_uri: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BenchmarkRunRow(Base):
    __tablename__ = "benchmark_runs"

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    models: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # name, uri, corpus fingerprint
    config_hash: Mapped[str] = mapped_column(String(64))
    headline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    results_uri: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BenchmarkScoreRow(Base):
    """One cell: a model on a task at k shots in one mode, with who scored it and with which prompt."""

    __tablename__ = "benchmark_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("benchmark_runs.run_id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(64))
    shots: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer)
    scorer: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(64))
