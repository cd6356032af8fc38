"""A run's graph in a table of its own, not in the task rows.

0004 kept each task's dependencies in its ``task_executions`` row. A join with thousands of
dependencies then carries a large text value, which every update of that row (one per
finished dependency) rewrites: 10,000 dependencies cost a wide run a fifth of its speed.
The edges now live in ``task_dependencies``, one row per task that has dependencies, written
once; ``workflow_executions.graph_stored`` says whether a run's graph was stored at all (runs
created before 0004 have none: their graph comes from the workflow's code).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_dependencies",
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("task_id", sa.String(255), primary_key=True),
        sa.Column("dependencies", sa.Text, nullable=False),
    )
    op.add_column(
        "workflow_executions",
        sa.Column("graph_stored", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO task_dependencies (execution_id, task_id, dependencies)"
        " SELECT execution_id, task_id, dependencies FROM task_executions"
        " WHERE dependencies IS NOT NULL AND dependencies <> '[]'"
    )
    op.execute(
        "UPDATE workflow_executions SET graph_stored = 1 WHERE id IN"
        " (SELECT execution_id FROM task_executions WHERE dependencies IS NOT NULL)"
    )
    op.execute("ALTER TABLE task_executions DROP COLUMN dependencies")


def downgrade() -> None:
    op.add_column("task_executions", sa.Column("dependencies", sa.Text, nullable=True))
    op.execute(
        "UPDATE task_executions SET dependencies = (SELECT d.dependencies FROM"
        " task_dependencies d WHERE d.execution_id = task_executions.execution_id"
        " AND d.task_id = task_executions.task_id)"
    )
    op.drop_column("workflow_executions", "graph_stored")
    op.drop_table("task_dependencies")
