"""Workers: every runner that executes tasks registers itself and heartbeats.

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
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_heartbeat", sa.Float, nullable=False),
        sa.Column("running_tasks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_tasks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.String(32), nullable=False, server_default=""),
        sa.Column("stopped_at", sa.Float, nullable=True),
    )
    op.create_index("ix_workers_heartbeat", "workers", ["last_heartbeat"])
    op.create_index(
        "ix_workflow_executions_finished", "workflow_executions", ["status", "finished_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_finished", "workflow_executions")
    op.drop_table("workers")
