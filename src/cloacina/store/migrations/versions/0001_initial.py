"""Initial schema: workflow executions, task executions, outputs, events.

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
        "workflow_executions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="public"),
        sa.Column("package", sa.String(128), nullable=False, server_default="embedded"),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_context", sa.Text, nullable=True),
        sa.Column("final_context", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("tasks_total", sa.Integer, nullable=False),
        sa.Column("tasks_remaining", sa.Integer, nullable=False),
        sa.Column("tasks_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_workflow_executions_status", "workflow_executions", ["status"])
    op.create_index("ix_workflow_executions_created", "workflow_executions", ["created_at"])
    op.create_index(
        "ix_workflow_executions_name", "workflow_executions", ["workflow_name", "created_at"]
    )
    op.create_table(
        "task_executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("task_index", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("recovery_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deps_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deps_remaining", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deps_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deps_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claim_token", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("retry_at", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_traceback", sa.Text, nullable=True),
        sa.Column("skip_reason", sa.Text, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.UniqueConstraint("execution_id", "task_id", name="uq_task_executions_execution_task"),
    )
    op.create_index("ix_task_executions_status", "task_executions", ["status", "id"])
    op.create_table(
        "task_outputs",
        sa.Column(
            "task_execution_id",
            sa.Integer,
            sa.ForeignKey("task_executions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
    )
    op.create_index("ix_task_outputs_execution", "task_outputs", ["execution_id", "task_id"])
    op.create_table(
        "execution_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("task_id", sa.String(255), nullable=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_execution_events_execution", "execution_events", ["execution_id", "id"])


def downgrade() -> None:
    op.drop_table("execution_events")
    op.drop_table("task_outputs")
    op.drop_table("task_executions")
    op.drop_table("workflow_executions")
