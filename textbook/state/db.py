"""The few queries stages need: register, claim, finish, fail, and read back for status and export."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from textbook.records import Video
from textbook.state.models import KnowledgePointRow, StageRun, VideoKnowledgePoint, VideoRow, utcnow

# A run still marked 'running' after this long is taken to belong to a dead worker.
STALE_AFTER = timedelta(hours=6)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StateDB:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent; safe for racing workers)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # workers starting together migrate one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    # -- registration -------------------------------------------------------------------------

    def upsert_knowledge_points(self, kps: Iterable[Any]) -> None:
        with self.session() as s:
            for kp in kps:
                s.merge(KnowledgePointRow(id=kp.id, subject=kp.subject, course=kp.course, sub_course=kp.sub_course,
                                          name=kp.name, path=kp.path, query=kp.query, level=kp.level))

    def add_video(self, video: Video, kp_id: str | None = None) -> bool:
        """Record a found video and link it to ``kp_id``; True when the video is new to the database."""
        with self.session() as s:
            row = s.get(VideoRow, video.video_id)
            new = row is None
            if new:
                s.add(VideoRow(video_id=video.video_id, url=video.url, source=video.source, meta=video.to_dict()))
            if kp_id and s.get(VideoKnowledgePoint, (video.video_id, kp_id)) is None:
                s.add(VideoKnowledgePoint(video_id=video.video_id, kp_id=kp_id,
                                          search_keyword=video.search_keyword, rank=video.rank))
        return new

    def update_video_meta(self, video_id: str, meta: dict[str, Any]) -> None:
        with self.session() as s:
            row = s.get(VideoRow, video_id)
            row.meta = {**(row.meta or {}), **meta}

    def set_video_status(self, video_id: str, status: str, reason: str = "") -> None:
        with self.session() as s:
            s.execute(update(VideoRow).where(VideoRow.video_id == video_id)
                      .values(status=status, reason=reason, updated_at=utcnow()))

    # -- reads ------------------------------------------------------------------------------

    def video(self, video_id: str) -> VideoRow | None:
        with self.session() as s:
            return s.get(VideoRow, video_id)

    def videos(self, kp_ids: Sequence[str] | None = None, status: str | None = None) -> list[VideoRow]:
        with self.session() as s:
            q = select(VideoRow).order_by(VideoRow.video_id)
            if kp_ids is not None:
                q = q.where(VideoRow.video_id.in_(
                    select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
            if status:
                q = q.where(VideoRow.status == status)
            return list(s.scalars(q))

    def links(self, video_id: str) -> list[VideoKnowledgePoint]:
        with self.session() as s:
            return list(s.scalars(select(VideoKnowledgePoint).where(VideoKnowledgePoint.video_id == video_id)
                                  .order_by(VideoKnowledgePoint.found_at, VideoKnowledgePoint.kp_id)))

    def knowledge_point(self, kp_id: str) -> KnowledgePointRow | None:
        with self.session() as s:
            return s.get(KnowledgePointRow, kp_id)

    def run(self, video_id: str, stage: str) -> StageRun | None:
        with self.session() as s:
            return s.scalars(select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)).first()

    def runs(self, video_id: str | None = None) -> list[StageRun]:
        with self.session() as s:
            q = select(StageRun).order_by(StageRun.video_id, StageRun.id)
            if video_id is not None:
                q = q.where(StageRun.video_id == video_id)
            return list(s.scalars(q))

    # -- stage lifecycle ----------------------------------------------------------------------

    def claim(self, video_id: str, stage: str, config_hash: str, worker: str | None = None) -> bool:
        """Mark (video, stage) running for this worker. False if another live worker holds it.

        A conditional UPDATE, so two workers racing for the same run cannot both win, on SQLite
        and on Postgres alike.
        """
        worker = worker or worker_name()
        now = utcnow()
        try:
            with self.session() as s:
                if s.scalars(select(StageRun.id).where(StageRun.video_id == video_id,
                                                       StageRun.stage == stage)).first() is None:
                    s.add(StageRun(video_id=video_id, stage=stage, status="running", attempts=1, worker=worker,
                                   config_hash=config_hash, started_at=now, artifacts=[], result={}))
                    return True
        except IntegrityError:
            pass  # another worker inserted it first: fall through to the conditional update
        with self.session() as s:
            res = s.execute(
                update(StageRun)
                .where(StageRun.video_id == video_id, StageRun.stage == stage,
                       (StageRun.status != "running") | (StageRun.started_at < now - STALE_AFTER))
                .values(status="running", attempts=StageRun.attempts + 1, worker=worker, error="",
                        config_hash=config_hash, started_at=now, finished_at=None, seconds=None)
            )
            return res.rowcount == 1

    def finish(self, video_id: str, stage: str, status: str, *, artifacts: list[dict[str, Any]] | None = None,
               result: dict[str, Any] | None = None, error: str = "") -> None:
        if status not in ("done", "skipped", "failed"):
            raise ValueError(f"bad final status {status!r}")
        now = utcnow()
        with self.session() as s:
            run = s.scalars(select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)).one()
            run.status = status
            run.error = error
            run.finished_at = now
            run.seconds = (now - run.started_at).total_seconds() if run.started_at else None
            run.result = result or {}
            run.artifacts = [] if status == "failed" else (artifacts or [])
