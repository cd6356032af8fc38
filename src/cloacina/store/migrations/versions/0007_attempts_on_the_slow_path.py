"""Completed attempts are not copied into ``task_attempts`` on the hot path.

A task's completion is the common case and its attempt is already a record of its own: the
task's row, which keeps it until a rerun resets the row (the reset copies it into
``task_attempts`` first, see the store's ``reset_tasks``). The trigger of 0004 now records
only the attempts that did not complete (failed, retried, skipped while running, lost),
which saves an insert and an index update on every completed task.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = (
    "execution_id, task_id, attempt, recovery, outcome, worker_id, started_at, finished_at,"
    " error, error_traceback, skip_reason"
)
_OUTCOME = (
    "CASE WHEN NEW.status = 'ready' AND NEW.recovery_count > OLD.recovery_count THEN 'lost'"
    " WHEN NEW.status = 'ready' THEN 'failed' ELSE NEW.status END"
)
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def _when(completed_too: bool) -> str:
    return (
        "OLD.status = 'running' AND NEW.status <> 'running'"
        + ("" if completed_too else " AND NEW.status <> 'completed'")
        + " AND NOT (NEW.status = 'ready' AND NEW.attempt = OLD.attempt - 1"
        " AND NEW.recovery_count = OLD.recovery_count)"
    )


def _create(completed_too: bool) -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS task_attempt_ended ON task_executions")
        op.execute(
            "CREATE TRIGGER task_attempt_ended AFTER UPDATE OF status ON task_executions"
            f" FOR EACH ROW WHEN ({_when(completed_too)})"
            " EXECUTE FUNCTION cloacina_task_attempt_ended()"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS task_attempt_ended")
        op.execute(
            "CREATE TRIGGER task_attempt_ended AFTER UPDATE OF status ON task_executions"
            f" WHEN {_when(completed_too)} BEGIN"
            f" INSERT INTO task_attempts ({_COLUMNS}) VALUES (OLD.execution_id, OLD.task_id,"
            f" OLD.attempt, OLD.recovery_count, {_OUTCOME}, OLD.worker_id, OLD.started_at,"
            f" COALESCE(NEW.finished_at, {_SQLITE_NOW}), NEW.error, NEW.error_traceback,"
            " NEW.skip_reason); END"
        )


def upgrade() -> None:
    _create(completed_too=False)


def downgrade() -> None:
    _create(completed_too=True)
