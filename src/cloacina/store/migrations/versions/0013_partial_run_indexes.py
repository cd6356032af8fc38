"""Indexes that cost an ordinary run nothing.

0009 and 0011 indexed runs by deadline, schedule time, backfill and trigger. Most runs have
none of these, yet every run paid for them: an entry in each index when it was created, and
an update of the three that hold its status whenever the status changed (chain3 lost a tenth
of its speed). They become partial indexes over the runs that have the column set, which are
the only rows their queries ask for (``x = ?`` and ``x <= ?`` imply ``x IS NOT NULL`` to
both SQLite's and PostgreSQL's planners). ``ix_workflow_executions_status (status)`` goes:
``(status, created_at, id)`` serves every query it served.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "workflow_executions"
#: name -> (columns, the rows it holds)
PARTIAL = {
    "ix_workflow_executions_deadline": (["deadline_alerted", "deadline_at"], "deadline_at"),
    "ix_workflow_executions_scheduled": (["workflow_name", "scheduled_for"], "scheduled_for"),
    "ix_workflow_executions_backfill": (["backfill_id", "status"], "backfill_id"),
    "ix_workflow_executions_trigger": (
        ["trigger_name", "trigger_key", "status"],
        "trigger_name",
    ),
}


def upgrade() -> None:
    for name, (columns, present) in PARTIAL.items():
        op.drop_index(name, TABLE)
        where = sa.text(f"{present} IS NOT NULL")
        op.create_index(name, TABLE, columns, sqlite_where=where, postgresql_where=where)
    op.drop_index("ix_workflow_executions_status", TABLE)


def downgrade() -> None:
    op.create_index("ix_workflow_executions_status", TABLE, ["status"])
    for name, (columns, _present) in PARTIAL.items():
        op.drop_index(name, TABLE)
        op.create_index(name, TABLE, columns)
