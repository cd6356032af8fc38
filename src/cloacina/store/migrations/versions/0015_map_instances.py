"""Dynamic fan-out (DESIGN §11, ``map_over``): a mapped task's instances are task rows.

An instance is a row of ``task_executions`` like any task (its own status, attempts,
retries, claim, heartbeat and logs), claimed and completed through the same statements, with:

- ``map_parent``: the row id of its mapped task; ``map_index``: its place in the list;
  ``map_item``: its element of the list (JSON). Indexed, partially, by (parent, index):
  ordinary rows pay nothing for it.
- On the mapped task's own row: ``map_total`` (instances), ``map_remaining`` (not yet
  terminal), ``map_failed`` and ``map_next`` (the next index to make ready: at most
  ``max_parallel`` instances are ready or running at once, whichever worker runs them).

Instances are not counted in the run's ``tasks_total``: the mapped task is.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLE = "task_executions"
COLUMNS = (
    ("map_parent", sa.Integer),
    ("map_index", sa.Integer),
    ("map_item", sa.Text),
    ("map_total", sa.Integer),
    ("map_remaining", sa.Integer),
    ("map_failed", sa.Integer),
    ("map_next", sa.Integer),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column(TABLE, sa.Column(name, kind, nullable=True))
    instance = sa.text("map_parent IS NOT NULL")
    op.create_index(
        "ix_task_executions_map",
        TABLE,
        ["map_parent", "map_index"],
        sqlite_where=instance,
        postgresql_where=instance,
    )


def downgrade() -> None:
    op.drop_index("ix_task_executions_map", TABLE)
    with op.batch_alter_table(TABLE) as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
