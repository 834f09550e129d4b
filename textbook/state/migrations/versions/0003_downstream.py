"""Downstream DAGs: training runs, benchmark runs and scores.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "train_runs",
        sa.Column("run_key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(128), nullable=False, unique=True),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("corpus_uri", sa.Text(), nullable=False),
        sa.Column("corpus_fingerprint", sa.String(64), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("tokens_seen", sa.Integer(), nullable=True),
        sa.Column("images_seen", sa.Integer(), nullable=True),
        sa.Column("final_loss", sa.Float(), nullable=True),
        sa.Column("checkpoint_uri", sa.Text(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_train_runs_corpus_fingerprint", "train_runs", ["corpus_fingerprint"])
    op.create_index("ix_train_runs_status", "train_runs", ["status"])
    op.create_table(
        "benchmark_runs",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("headline", sa.JSON(), nullable=False),
        sa.Column("results_uri", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "benchmark_scores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("benchmark_runs.run_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("shots", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("stderr", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("prompt_version", sa.String(64), nullable=False),
    )
    op.create_index("ix_benchmark_scores_run_id", "benchmark_scores", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_benchmark_scores_run_id", "benchmark_scores")
    op.drop_table("benchmark_scores")
    op.drop_table("benchmark_runs")
    op.drop_index("ix_train_runs_status", "train_runs")
    op.drop_index("ix_train_runs_corpus_fingerprint", "train_runs")
    op.drop_table("train_runs")
