"""Add runtime_runs: every remote submission (a Kaggle kernel, a Modal call, a Hub commit).

Why: a remote runtime keeps running when mltrainer dies, and a job's context is only saved after a
stage ends. The submission must be on disk the moment the remote side accepts it, so a resumed job
reattaches to it instead of submitting (and paying for) the same work twice; the same rows carry the
GPU minutes and cost estimate that make up the job's cost ledger.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False, unique=True),  # deterministic: job + stage + attempt
        sa.Column("remote_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),  # submitted | running | done | failed | cancelled
        sa.Column("gpu", sa.String(), nullable=True),
        sa.Column("gpu_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("detail_json", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_runtime_runs_job_id", "runtime_runs", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_runtime_runs_job_id", "runtime_runs")
    op.drop_table("runtime_runs")
