"""Initial schema: knowledge points, videos, their links, stage runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_points",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("sub_course", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
    )
    op.create_table(
        "videos",
        sa.Column("video_id", sa.String(128), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_videos_status", "videos", ["status"])
    op.create_table(
        "video_knowledge_points",
        sa.Column("video_id", sa.String(128), sa.ForeignKey("videos.video_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("kp_id", sa.String(200), sa.ForeignKey("knowledge_points.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("search_keyword", sa.Text(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("found_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("video_id", sa.String(128), sa.ForeignKey("videos.video_id", ondelete="CASCADE"), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.UniqueConstraint("video_id", "stage", name="uq_stage_run"),
    )
    op.create_index("ix_stage_runs_video_id", "stage_runs", ["video_id"])
    op.create_index("ix_stage_runs_status", "stage_runs", ["status"])


def downgrade() -> None:
    op.drop_table("stage_runs")
    op.drop_table("video_knowledge_points")
    op.drop_index("ix_videos_status", "videos")
    op.drop_table("videos")
    op.drop_table("knowledge_points")
