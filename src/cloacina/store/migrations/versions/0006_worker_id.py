"""One word for a process that executes tasks: a *worker*. The column naming the worker that
holds a task's claim, ``task_executions.claimed_by``, becomes ``worker_id`` (the id of its
row in ``workers``, as ``task_attempts.worker_id`` already is).

SQLite (3.25 and newer) rewrites the trigger of 0004 along with the column; PostgreSQL keeps
a trigger function's body as text, so the function is written again.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION cloacina_task_attempt_ended() RETURNS trigger AS $$ BEGIN"
    " INSERT INTO task_attempts (execution_id, task_id, attempt, recovery, outcome, worker_id,"
    " started_at, finished_at, error, error_traceback, skip_reason) VALUES ("
    " OLD.execution_id, OLD.task_id, OLD.attempt, OLD.recovery_count,"
    " CASE WHEN NEW.status = 'ready' AND NEW.recovery_count > OLD.recovery_count THEN 'lost'"
    " WHEN NEW.status = 'ready' THEN 'failed' ELSE NEW.status END,"
    " OLD.{worker}, OLD.started_at,"
    " COALESCE(NEW.finished_at, EXTRACT(EPOCH FROM clock_timestamp())::float8), NEW.error,"
    " NEW.error_traceback, NEW.skip_reason);"
    " RETURN NULL; END $$ LANGUAGE plpgsql"
)


def upgrade() -> None:
    op.execute("ALTER TABLE task_executions RENAME COLUMN claimed_by TO worker_id")
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION.format(worker="worker_id"))


def downgrade() -> None:
    op.execute("ALTER TABLE task_executions RENAME COLUMN worker_id TO claimed_by")
    if op.get_context().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION.format(worker="claimed_by"))
