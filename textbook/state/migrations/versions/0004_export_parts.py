"""Export parts: one content-addressed corpus document per video, for incremental packs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_parts",
        sa.Column("video_id", sa.String(128), sa.ForeignKey("videos.video_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.String(700), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kp_id", sa.String(200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("packed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_export_parts_kp_id", "export_parts", ["kp_id"])


def downgrade() -> None:
    op.drop_index("ix_export_parts_kp_id", table_name="export_parts")
    op.drop_table("export_parts")
