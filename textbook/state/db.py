"""The few queries stages need: register, claim, heartbeat, finish, publish, and read back.

Every method is one short transaction, retried with backoff when the database is briefly gone
(a restart, a failover) for ``retry_seconds``; claims carry a token so a retried claim that did
commit is recognised as ours.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import create_engine, delete, event, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from textbook.records import Video
from textbook.state.models import (ExportPart, KnowledgePointRow, StageRun, StageSettings, SupersededArtifact,
                                   VideoKnowledgePoint, VideoRow, utcnow)
from textbook.state.owner import gone_here, this_process

log = logging.getLogger(__name__)
T = TypeVar("T")
CHUNK = 500  # ids per IN (...) list: well under every backend's limit on bound parameters


class ClaimLost(RuntimeError):
    """Another worker took this stage over (our lease expired): our result must not overwrite its."""


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


def _transient(exc: BaseException) -> bool:
    """A restart, a failover, a lock: worth waiting for. A full disk is not."""
    if "disk is full" in str(exc.orig if isinstance(exc, DBAPIError) else exc):
        return False
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """Run a StateDB method again after a transient database error, with backoff, for up to
    ``retry_seconds``; then the error goes to the caller."""

    @functools.wraps(method)
    def wrapper(self: "StateDB", *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("state database unavailable (%s); retrying in %.1fs",
                            str(exc.orig).strip().splitlines()[0] if exc.orig else exc, delay)
                self.engine.dispose()  # drop pooled connections to the old server
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


def _upsert(session: Session, model: type, values: dict[str, Any], keys: Sequence[str],
            update_fields: Sequence[str] = ()) -> None:
    """INSERT ... ON CONFLICT: two workers registering the same row never collide."""
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model).values(**values)
    if update_fields:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={f: stmt.excluded[f] for f in update_fields})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt)


def _keys(artifacts: Iterable[dict[str, Any]] | None) -> set[str]:
    return {a["key"] for a in artifacts or [] if isinstance(a, dict) and a.get("key")}


def published_keys(snapshot: dict[str, Any] | None) -> set[str]:
    """Every artifact key a published result refers to."""
    return {k for run in (snapshot or {}).get("runs", []) for k in _keys(run.get("artifacts"))}


class StateDB:
    def __init__(self, url: str, *, retry_seconds: float = 60.0, lease_seconds: float = 120.0) -> None:
        self.url = url
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.retry_seconds = retry_seconds
        self.lease = timedelta(seconds=lease_seconds)

    @retried
    def create_schema(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent; racing workers migrate one
        at a time: an advisory lock on Postgres, a file lock beside the SQLite file)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self._migration_lock(), self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not path or path == ":memory:":
            yield
            return
        with open(f"{path}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    # -- registration -------------------------------------------------------------------------

    @retried
    def upsert_knowledge_points(self, kps: Iterable[Any]) -> None:
        fields = ("subject", "course", "sub_course", "name", "path", "query", "level")
        with self.session() as s:
            for kp in kps:
                _upsert(s, KnowledgePointRow, {"id": kp.id, **{f: getattr(kp, f) for f in fields}}, ["id"], fields)

    @retried
    def add_video(self, video: Video, kp_id: str | None = None) -> bool:
        """Record a found video and link it to ``kp_id``; True when the video is new to the database."""
        with self.session() as s:
            new = s.get(VideoRow, video.video_id) is None
            now = utcnow()
            _upsert(s, VideoRow, {"video_id": video.video_id, "url": video.url, "source": video.source,
                                  "meta": video.to_dict(), "status": "new", "reason": "", "created_at": now,
                                  "updated_at": now}, ["video_id"])
            if kp_id:
                _upsert(s, VideoKnowledgePoint, {"video_id": video.video_id, "kp_id": kp_id,
                                                 "search_keyword": video.search_keyword, "rank": video.rank,
                                                 "found_at": now}, ["video_id", "kp_id"])
        return new

    @retried
    def update_video_meta(self, video_id: str, meta: dict[str, Any]) -> None:
        with self.session() as s:
            row = s.get(VideoRow, video_id)
            row.meta = {**(row.meta or {}), **meta}

    @retried
    def set_video_status(self, video_id: str, status: str, reason: str = "") -> None:
        with self.session() as s:
            s.execute(update(VideoRow).where(VideoRow.video_id == video_id)
                      .values(status=status, reason=reason, updated_at=utcnow()))

    # -- reads ------------------------------------------------------------------------------

    @retried
    def video(self, video_id: str) -> VideoRow | None:
        with self.session() as s:
            return s.get(VideoRow, video_id)

    @retried
    def videos(self, kp_ids: Sequence[str] | None = None, status: str | None = None) -> list[VideoRow]:
        with self.session() as s:
            q = select(VideoRow).order_by(VideoRow.video_id)
            if kp_ids is not None:
                q = q.where(VideoRow.video_id.in_(
                    select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
            if status:
                q = q.where(VideoRow.status == status)
            return list(s.scalars(q))

    @retried
    def video_ids(self, kp_ids: Sequence[str] | None = None) -> list[str]:
        """The ids ``videos`` would return, without loading the rows."""
        with self.session() as s:
            q = select(VideoRow.video_id).order_by(VideoRow.video_id)
            if kp_ids is not None:
                q = q.where(VideoRow.video_id.in_(
                    select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
            return list(s.scalars(q))

    @retried
    def videos_by_id(self, video_ids: Sequence[str]) -> list[VideoRow]:
        with self.session() as s:
            return [row for chunk in _chunks(video_ids)
                    for row in s.scalars(select(VideoRow).where(VideoRow.video_id.in_(chunk))
                                         .order_by(VideoRow.video_id))]

    @retried
    def links(self, video_id: str) -> list[VideoKnowledgePoint]:
        with self.session() as s:
            return list(s.scalars(select(VideoKnowledgePoint).where(VideoKnowledgePoint.video_id == video_id)
                                  .order_by(VideoKnowledgePoint.found_at, VideoKnowledgePoint.kp_id)))

    @retried
    def knowledge_point(self, kp_id: str) -> KnowledgePointRow | None:
        with self.session() as s:
            return s.get(KnowledgePointRow, kp_id)

    @retried
    def run(self, video_id: str, stage: str) -> StageRun | None:
        with self.session() as s:
            return s.scalars(select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)).first()

    @retried
    def runs(self, video_id: str | None = None) -> list[StageRun]:
        with self.session() as s:
            q = select(StageRun).order_by(StageRun.video_id, StageRun.id)
            if video_id is not None:
                q = q.where(StageRun.video_id == video_id)
            return list(s.scalars(q))

    @retried
    def primary_videos_runs(self, kp_id: str) -> dict[str, tuple[str, list[StageRun]]]:
        """video id -> (url, its stage runs), in video id order, for the videos ``kp_id`` found
        first (their first link by ``found_at``, then kp id, as ``links`` orders them): one query."""
        first = (select(VideoKnowledgePoint.kp_id).where(VideoKnowledgePoint.video_id == VideoRow.video_id)
                 .order_by(VideoKnowledgePoint.found_at, VideoKnowledgePoint.kp_id).limit(1)
                 .correlate(VideoRow).scalar_subquery())
        q = (select(VideoRow.video_id, VideoRow.url, StageRun.stage, StageRun.status, StageRun.config_hash,
                    StageRun.error, StageRun.result)
             .join(VideoKnowledgePoint, VideoKnowledgePoint.video_id == VideoRow.video_id)
             .outerjoin(StageRun, StageRun.video_id == VideoRow.video_id)
             .where(VideoKnowledgePoint.kp_id == kp_id, first == kp_id)
             .order_by(VideoRow.video_id, StageRun.id))
        out: dict[str, tuple[str, list[StageRun]]] = {}
        with self.session() as s:
            for vid, url, stage, status, config_hash, error, result in s.execute(q):
                runs = out.setdefault(vid, (url, []))[1]
                if stage is not None:
                    runs.append(StageRun(video_id=vid, stage=stage, status=status, config_hash=config_hash,
                                         error=error, result=result or {}))
        return out

    # -- stage lifecycle ----------------------------------------------------------------------

    def stale_reason(self, run: StageRun, max_age: timedelta | None = None) -> str:
        """Why a 'running' claim no longer belongs to a live worker ('' while it does)."""
        if run.status != "running":
            return ""
        if gone_here(run.owner_host, run.owner_pid, run.owner_started):
            return f"owner gone ({run.owner_host}:{run.owner_pid} has exited)"
        now = utcnow()
        beat = run.heartbeat_at or run.started_at
        if beat is None or beat < now - self.lease:
            return f"owner gone (no heartbeat for over {self.lease.total_seconds():g} s)"
        if max_age is not None and run.started_at is not None and run.started_at < now - max_age:
            return f"over its time limit ({max_age.total_seconds() / 60:g} min)"
        return ""

    @retried
    def claim(self, video_id: str, stage: str, config_hash: str, token: str,
              max_age: timedelta | None = None, force: bool = False) -> bool:
        """Mark (video, stage) running for this process under ``token``. False while another live
        worker holds it, or once it finished under ``config_hash`` (unless ``force``); a claim whose
        owner is gone (or past ``max_age``) is taken over.

        Compare-and-set on the claim token, so two workers racing for the same run cannot both win,
        on SQLite and on Postgres alike; a retry of a claim that did commit finds its own token.
        """
        owner, now = this_process(), utcnow()
        claim = {"status": "running", "worker": owner.label, "owner_host": owner.host, "owner_pid": owner.pid,
                 "owner_started": owner.started, "claim_token": token, "heartbeat_at": now, "started_at": now,
                 "config_hash": config_hash}
        with self.session() as s:
            _upsert(s, StageRun, {"video_id": video_id, "stage": stage, "attempts": 0, "error": "",
                                  "artifacts": [], "result": {}, **claim, "status": "new"}, ["video_id", "stage"])
            row = s.scalars(select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)).one()
            if row.claim_token == token and row.status == "running":
                return True
            if row.status in ("done", "skipped") and row.config_hash == config_hash and not force:
                return False  # another worker finished it since the caller looked: its result stands
            if row.status == "running" and not self.stale_reason(row, max_age):
                return False
            if row.status == "running":
                log.warning("%s: %s: taking over a stale claim: %s", video_id, stage, self.stale_reason(row, max_age))
            res = s.execute(update(StageRun)
                            .where(StageRun.id == row.id, StageRun.status == row.status,
                                   StageRun.claim_token == row.claim_token)
                            .values(**claim, attempts=StageRun.attempts + 1, error="", finished_at=None, seconds=None))
            return res.rowcount == 1

    @retried
    def heartbeat(self, video_id: str, stage: str, token: str) -> bool:
        """Refresh our claim; False when it is no longer ours."""
        with self.session() as s:
            res = s.execute(update(StageRun)
                            .where(StageRun.video_id == video_id, StageRun.stage == stage,
                                   StageRun.claim_token == token, StageRun.status == "running")
                            .values(heartbeat_at=utcnow()))
            return res.rowcount == 1

    @retried
    def finish(self, video_id: str, stage: str, status: str, token: str, *,
               artifacts: list[dict[str, Any]] | None = None, result: dict[str, Any] | None = None,
               error: str = "") -> None:
        """Record the outcome of our claim. Keys the previous run wrote and neither this run nor the
        published result uses are marked superseded. Raises ClaimLost if the claim was taken over."""
        if status not in ("done", "skipped", "failed"):
            raise ValueError(f"bad final status {status!r}")
        now = utcnow()
        artifacts = [] if status == "failed" else (artifacts or [])
        with self.session() as s:
            run = s.scalars(select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)).one()
            if run.claim_token != token:
                raise ClaimLost(f"{video_id}: {stage}: the claim was taken over by {run.worker}")
            if run.status != "running":
                if run.status == status:
                    return  # a retry of a finish that did commit
                raise ClaimLost(f"{video_id}: {stage}: the claim is no longer running ({run.status})")
            video = s.get(VideoRow, video_id)
            dropped = _keys(run.artifacts) - _keys(artifacts) - published_keys(video.published if video else None)
            self._supersede(s, video_id, dropped)
            run.status = status
            run.error = error
            run.finished_at = now
            run.seconds = (now - run.started_at).total_seconds() if run.started_at else None
            run.result = result or {}
            run.artifacts = artifacts

    @retried
    def remember_settings(self, fingerprint: str, stage: str, settings: dict[str, Any]) -> None:
        with self.session() as s:
            _upsert(s, StageSettings, {"fingerprint": fingerprint, "stage": stage, "settings": settings},
                    ["fingerprint"])

    @retried
    def stage_settings(self, fingerprints: Iterable[str]) -> dict[str, dict[str, Any]]:
        fingerprints = sorted(set(fingerprints))
        with self.session() as s:
            rows = s.scalars(select(StageSettings).where(StageSettings.fingerprint.in_(fingerprints))).all()
            return {r.fingerprint: r.settings for r in rows}

    # -- publishing ---------------------------------------------------------------------------

    @retried
    def publish(self, video_id: str, snapshot: dict[str, Any]) -> None:
        """Make ``snapshot`` the video's published result; keys only the old one used are superseded."""
        with self.session() as s:
            video = s.get(VideoRow, video_id)
            new_keys = published_keys(snapshot)
            live = {k for r in s.scalars(select(StageRun).where(StageRun.video_id == video_id))
                    for k in _keys(r.artifacts)}
            self._supersede(s, video_id, published_keys(video.published) - new_keys - live)
            if new_keys:
                s.execute(delete(SupersededArtifact).where(SupersededArtifact.key.in_(sorted(new_keys))))
            video.published = snapshot
            video.published_at = utcnow()

    @staticmethod
    def _supersede(s: Session, video_id: str, keys: set[str]) -> None:
        for key in sorted(keys):
            _upsert(s, SupersededArtifact, {"key": key, "video_id": video_id, "superseded_at": utcnow()}, ["key"])

    @retried
    def superseded(self) -> dict[str, list[str]]:
        """Superseded keys by video, for videos with no stage running (a running stage may be
        rewriting one of them)."""
        with self.session() as s:
            busy = select(StageRun.video_id).where(StageRun.status == "running")
            rows = s.execute(select(SupersededArtifact.video_id, SupersededArtifact.key)
                             .where(SupersededArtifact.video_id.not_in(busy))
                             .order_by(SupersededArtifact.key)).all()
        out: dict[str, list[str]] = {}
        for vid, key in rows:
            out.setdefault(vid, []).append(key)
        return out

    @retried
    def referenced_keys(self, video_id: str) -> set[str]:
        """Every key the video's stage runs, published result or current export part still use."""
        with self.session() as s:
            video = s.get(VideoRow, video_id)
            live = {k for r in s.scalars(select(StageRun).where(StageRun.video_id == video_id))
                    for k in _keys(r.artifacts)}
            part = s.get(ExportPart, video_id)
            return live | published_keys(video.published if video else None) | ({part.key} if part else set())

    @retried
    def forget_superseded(self, keys: Iterable[str]) -> None:
        keys = sorted(keys)
        if keys:
            with self.session() as s:
                s.execute(delete(SupersededArtifact).where(SupersededArtifact.key.in_(keys)))

    # -- export parts -------------------------------------------------------------------------

    @retried
    def links_of(self, video_ids: Sequence[str]) -> dict[str, list[VideoKnowledgePoint]]:
        """Each video's links, ordered as ``links`` orders them: one query per few hundred videos."""
        out: dict[str, list[VideoKnowledgePoint]] = {v: [] for v in video_ids}
        with self.session() as s:
            for chunk in _chunks(video_ids):
                for link in s.scalars(select(VideoKnowledgePoint).where(VideoKnowledgePoint.video_id.in_(chunk))
                                      .order_by(VideoKnowledgePoint.found_at, VideoKnowledgePoint.kp_id)):
                    out[link.video_id].append(link)
        return out

    @retried
    def runs_of(self, video_ids: Sequence[str]) -> dict[str, list[StageRun]]:
        out: dict[str, list[StageRun]] = {v: [] for v in video_ids}
        with self.session() as s:
            for chunk in _chunks(video_ids):
                for run in s.scalars(select(StageRun).where(StageRun.video_id.in_(chunk)).order_by(StageRun.id)):
                    out[run.video_id].append(run)
        return out

    @retried
    def knowledge_points(self, kp_ids: Iterable[str]) -> dict[str, KnowledgePointRow]:
        ids = sorted(set(kp_ids))
        with self.session() as s:
            return {r.id: r for chunk in _chunks(ids)
                    for r in s.scalars(select(KnowledgePointRow).where(KnowledgePointRow.id.in_(chunk)))}

    @retried
    def part_versions(self, video_ids: Sequence[str]) -> dict[str, str]:
        with self.session() as s:
            return {vid: version for chunk in _chunks(video_ids)
                    for vid, version in s.execute(select(ExportPart.video_id, ExportPart.version)
                                                  .where(ExportPart.video_id.in_(chunk)))}

    @retried
    def record_parts(self, parts: Sequence[dict[str, Any]]) -> None:
        """Make each part the video's current one; the key it replaces is superseded (the next
        compaction deletes it, under its lock, once no compaction can be reading it)."""
        if not parts:
            return
        with self.session() as s:
            old = {p.video_id: p.key for chunk in _chunks([p["video_id"] for p in parts])
                   for p in s.scalars(select(ExportPart).where(ExportPart.video_id.in_(chunk)))}
            for part in parts:
                previous = old.get(part["video_id"])
                if previous and previous != part["key"]:
                    self._supersede(s, part["video_id"], {previous})
                _upsert(s, ExportPart, {**part, "packed_at": utcnow()}, ["video_id"],
                        ["key", "version", "kp_id", "level", "packed_at"])
            s.execute(delete(SupersededArtifact).where(SupersededArtifact.key.in_(sorted(p["key"] for p in parts))))

    @retried
    def videos_to_pack(self, kp_ids: Sequence[str] | None = None, margin: timedelta = timedelta(minutes=10)
                       ) -> list[str]:
        """Videos with no export part, or whose row or links changed since it was packed: one
        query, which a compaction runs so that a video whose pack did not run is not left out.
        ``margin`` covers clocks of different hosts that disagree a little."""
        since = ExportPart.packed_at - margin
        relinked = (select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.video_id == VideoRow.video_id,
                                                               VideoKnowledgePoint.found_at > since)
                    .correlate(VideoRow, ExportPart).exists())
        q = (select(VideoRow.video_id).outerjoin(ExportPart, ExportPart.video_id == VideoRow.video_id)
             .where(ExportPart.video_id.is_(None) | (VideoRow.updated_at > since)
                    | (VideoRow.published_at > since) | relinked)
             .order_by(VideoRow.video_id))
        if kp_ids is not None:
            q = q.where(VideoRow.video_id.in_(
                select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
        with self.session() as s:
            return list(s.scalars(q))

    @retried
    def part_key(self, video_id: str) -> str:
        with self.session() as s:
            return s.get(ExportPart, video_id).key

    @retried
    def current_parts(self, kp_ids: Sequence[str] | None = None) -> list[tuple[str, str, str, int]]:
        """(video id, part key, own knowledge point, its level) of every packed video, or of those
        found by ``kp_ids``, in video id order: the input of a compaction."""
        q = select(ExportPart.video_id, ExportPart.key, ExportPart.kp_id, ExportPart.level).order_by(ExportPart.video_id)
        if kp_ids is not None:
            q = q.where(ExportPart.video_id.in_(
                select(VideoKnowledgePoint.video_id).where(VideoKnowledgePoint.kp_id.in_(list(kp_ids)))))
        with self.session() as s:
            return [tuple(r) for r in s.execute(q)]


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]
