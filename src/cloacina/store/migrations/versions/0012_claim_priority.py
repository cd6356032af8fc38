"""Claims prefer higher priority: the ready-task index becomes ``(status, priority DESC, id)``.

A worker's search for ready tasks takes them by priority (a backfill's runs are below fresh
ones), then in order. With this index the search reads its rows in that order instead of
sorting every ready task; it replaces ``(status, id)`` (whose other users only filter on the
status), so a status change still updates one index, not two.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_task_executions_claim",
        "task_executions",
        ["status", sa.text("priority DESC"), "id"],
    )
    op.drop_index("ix_task_executions_status", "task_executions")


def downgrade() -> None:
    op.create_index("ix_task_executions_status", "task_executions", ["status", "id"])
    op.drop_index("ix_task_executions_claim", "task_executions")
