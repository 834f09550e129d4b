"""Tables: knowledge points, videos (one row however many knowledge points found it), stage runs,
and the artifacts a newer published result superseded (deleted by the next export)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class KnowledgePointRow(Base):
    __tablename__ = "knowledge_points"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    course: Mapped[str] = mapped_column(String(200))
    sub_course: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(Integer)


class VideoRow(Base):
    __tablename__ = "videos"

    video_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # new | running | done | filtered | failed
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # The last finished chain (status, reason and every stage run as it was): what the export ships,
    # untouched while a re-run of the video is pending or failing.
    published: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class VideoKnowledgePoint(Base):
    __tablename__ = "video_knowledge_points"

    video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True)
    kp_id: Mapped[str] = mapped_column(ForeignKey("knowledge_points.id", ondelete="CASCADE"), primary_key=True,
                                       index=True)
    search_keyword: Mapped[str] = mapped_column(Text, default="")
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    found_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StageRun(Base):
    """The latest run of one stage on one video."""

    __tablename__ = "stage_runs"
    __table_args__ = (UniqueConstraint("video_id", "stage", name="uq_stage_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    # running | done | skipped | failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker: Mapped[str] = mapped_column(String(200), default="")
    # The claim of a running stage: who holds it (host, pid, the process's start time, so a reused
    # pid is not mistaken for the owner), a token only the holder knows, and its last heartbeat.
    owner_host: Mapped[str] = mapped_column(String(200), default="")
    owner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    owner_started: Mapped[str] = mapped_column(String(32), default="")
    claim_token: Mapped[str] = mapped_column(String(32), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class StageSettings(Base):
    """The output settings a stage fingerprint stands for, so the dataset card can state the settings
    its videos were made with (not today's, which may be half-way through a re-run)."""

    __tablename__ = "stage_settings"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SupersededArtifact(Base):
    """A key a newer published result no longer uses; the next export deletes it, so a dataset
    being written from the older result never loses a file it is copying."""

    __tablename__ = "superseded_artifacts"

    key: Mapped[str] = mapped_column(String(700), primary_key=True)
    video_id: Mapped[str] = mapped_column(String(128), index=True)
    superseded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ExportPart(Base):
    """A video's part of the corpus: the document compaction reads instead of the video's stage
    outputs. ``version`` hashes what the part was built from, so a nightly pack rebuilds only the
    parts of videos that changed; ``key`` is content-addressed (a new part never overwrites one a
    compaction may be reading)."""

    __tablename__ = "export_parts"

    video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(700))
    version: Mapped[str] = mapped_column(String(64))
    kp_id: Mapped[str] = mapped_column(String(200), default="", index=True)  # the video's own knowledge point
    level: Mapped[int] = mapped_column(Integer, default=0)
    packed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
