"""Run control (DESIGN §11): idempotency keys and sub-workflows' parent links.

- ``workflow_executions.idempotency_key``: the caller's key (at most 255 characters), unique
  per tenant among runs that have one (a partial unique index: the database itself makes
  two concurrent submissions of one key create one run); ``idempotency_fingerprint``: the
  hash of the workflow and context it was submitted with, to refuse the same key with
  another body.
- ``workflow_executions.parent_execution_id`` / ``parent_task_id``: the run and task that
  started a sub-workflow's child run (indexed, partially, to list a run's children and to
  cascade cancel and pause); ``depth``: how deep the child is (0 for a top-level run).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLE = "workflow_executions"
COLUMNS = (
    ("idempotency_key", sa.String(255), None),
    ("idempotency_fingerprint", sa.String(64), None),
    ("parent_execution_id", sa.String(36), None),
    ("parent_task_id", sa.String(255), None),
    ("depth", sa.Integer, "0"),
)


def upgrade() -> None:
    for name, kind, default in COLUMNS:
        nullable = default is None
        op.add_column(TABLE, sa.Column(name, kind, nullable=nullable, server_default=default))
    keyed = sa.text("idempotency_key IS NOT NULL")
    op.create_index(
        "ux_workflow_executions_idempotency",
        TABLE,
        ["tenant", "idempotency_key"],
        unique=True,
        sqlite_where=keyed,
        postgresql_where=keyed,
    )
    child = sa.text("parent_execution_id IS NOT NULL")
    op.create_index(
        "ix_workflow_executions_parent",
        TABLE,
        ["parent_execution_id"],
        sqlite_where=child,
        postgresql_where=child,
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_parent", TABLE)
    op.drop_index("ux_workflow_executions_idempotency", TABLE)
    with op.batch_alter_table(TABLE) as batch:
        for name, _kind, _default in reversed(COLUMNS):
            batch.drop_column(name)
