"""Every attempt of a task as its own record, and each run's graph in the database.

``task_attempts`` gets one row whenever a task leaves ``running`` (completed, failed, retried,
skipped, taken back from a worker that stopped responding), written by a trigger so that no
path of the engine can forget it, and so that a rerun (which resets a task's row) never
overwrites its history. ``task_executions.dependencies`` holds each task's dependencies (a
JSON list of task ids, in declared order): every face can draw a run's graph without
importing its code, and tasks added to a running run carry their own edges.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# A task leaves 'running': record the attempt. A hand-back (the body never started: the
# attempt is given back) is not an attempt. A take-back from a silent worker is recorded as
# 'lost' (its recovery counter moved), a retry as 'failed' (the task goes back to 'ready').
_WHEN = (
    "OLD.status = 'running' AND NEW.status <> 'running'"
    " AND NOT (NEW.status = 'ready' AND NEW.attempt = OLD.attempt - 1"
    " AND NEW.recovery_count = OLD.recovery_count)"
)
_OUTCOME = (
    "CASE WHEN NEW.status = 'ready' AND NEW.recovery_count > OLD.recovery_count THEN 'lost'"
    " WHEN NEW.status = 'ready' THEN 'failed' ELSE NEW.status END"
)
_COLUMNS = (
    "execution_id, task_id, attempt, recovery, outcome, worker_id, started_at, finished_at,"
    " error, error_traceback, skip_reason"
)


def _values(now: str) -> str:
    return (
        f"OLD.execution_id, OLD.task_id, OLD.attempt, OLD.recovery_count, {_OUTCOME},"
        f" OLD.claimed_by, OLD.started_at, COALESCE(NEW.finished_at, {now}), NEW.error,"
        " NEW.error_traceback, NEW.skip_reason"
    )


_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_PG_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"


def upgrade() -> None:
    op.create_table(
        "task_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("recovery", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_traceback", sa.Text, nullable=True),
        sa.Column("skip_reason", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_task_attempts_execution", "task_attempts", ["execution_id", "task_id", "id"]
    )
    op.add_column("task_executions", sa.Column("dependencies", sa.Text, nullable=True))
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION cloacina_task_attempt_ended() RETURNS trigger AS $$ BEGIN"
            f" INSERT INTO task_attempts ({_COLUMNS}) VALUES ({_values(_PG_NOW)});"
            " RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER task_attempt_ended AFTER UPDATE OF status ON task_executions"
            f" FOR EACH ROW WHEN ({_WHEN}) EXECUTE FUNCTION cloacina_task_attempt_ended()"
        )
    else:
        op.execute(
            "CREATE TRIGGER task_attempt_ended AFTER UPDATE OF status ON task_executions"
            f" WHEN {_WHEN} BEGIN"
            f" INSERT INTO task_attempts ({_COLUMNS}) VALUES ({_values(_SQLITE_NOW)}); END"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS task_attempt_ended ON task_executions")
        op.execute("DROP FUNCTION IF EXISTS cloacina_task_attempt_ended()")
    else:
        op.execute("DROP TRIGGER IF EXISTS task_attempt_ended")
    with op.batch_alter_table("task_executions") as batch:
        batch.drop_column("dependencies")
    op.drop_index("ix_task_attempts_execution", "task_attempts")
    op.drop_table("task_attempts")
