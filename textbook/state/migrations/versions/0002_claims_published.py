"""Claims that die with their worker, published results, superseded artifacts, the settings each
stage fingerprint stands for, the kp_id index.

Revision ID: 0002
Revises: 0001

Videos that were done or filtered get their current stage runs as their published result, so an
upgraded corpus exports exactly what it exported before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RUN_FIELDS = ("stage", "status", "attempts", "error", "config_hash", "artifacts", "result", "worker",
              "started_at", "finished_at", "seconds")


def upgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_started", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("claim_token", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("published", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("published_at", sa.DateTime(), nullable=True))
    op.create_index("ix_video_knowledge_points_kp_id", "video_knowledge_points", ["kp_id"])
    op.create_table(
        "superseded_artifacts",
        sa.Column("key", sa.String(700), primary_key=True),
        sa.Column("video_id", sa.String(128), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_superseded_artifacts_video_id", "superseded_artifacts", ["video_id"])
    op.create_table(
        "stage_settings",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
    )
    _publish_finished_videos()


def _publish_finished_videos() -> None:
    conn = op.get_bind()
    videos = sa.table("videos", sa.column("video_id"), sa.column("status"), sa.column("reason"),
                      sa.column("updated_at"), sa.column("published", sa.JSON()), sa.column("published_at"))
    json_fields = {"artifacts", "result"}
    runs = sa.table("stage_runs", sa.column("video_id"),
                    *(sa.column(f, sa.JSON()) if f in json_fields else sa.column(f) for f in RUN_FIELDS))
    finished = conn.execute(sa.select(videos.c.video_id, videos.c.status, videos.c.reason, videos.c.updated_at)
                            .where(videos.c.status.in_(["done", "filtered"]))).all()
    for vid, status, reason, updated in finished:
        rows = conn.execute(sa.select(*(runs.c[f] for f in RUN_FIELDS)).where(runs.c.video_id == vid)).all()
        snapshot = {"status": status, "reason": reason or "",
                    "runs": [{f: _plain(getattr(r, f)) for f in RUN_FIELDS} for r in rows]}
        conn.execute(videos.update().where(videos.c.video_id == vid).values(published=snapshot, published_at=updated))


def _plain(value):  # noqa: ANN001, ANN202 - a column value made JSON-safe
    return value.isoformat() if hasattr(value, "isoformat") else value


def downgrade() -> None:
    op.drop_table("stage_settings")
    op.drop_table("superseded_artifacts")
    op.drop_index("ix_video_knowledge_points_kp_id", "video_knowledge_points")
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("published_at")
        batch.drop_column("published")
    with op.batch_alter_table("stage_runs") as batch:
        for name in ("heartbeat_at", "claim_token", "owner_started", "owner_pid", "owner_host"):
            batch.drop_column(name)
