"""Time: schedules and their fires, backfills, triggers, run priority.

- ``schedules``: a cron expression in an IANA zone for a workflow, with its catch-up policy,
  bounds, and where it came from (``api`` or ``declared`` by a workflow or package).
  ``anchor_at`` is the instant its times are counted from (creation, edit, resume): only
  times strictly after it fire. ``next_fire_at`` is indexed for the due check.
- ``schedule_fires``: one row per (schedule, scheduled time), unique: inserting it together
  with the run in one transaction is what makes a fire happen exactly once.
- ``backfills``: a range of a workflow's scheduled times run as one object, at most
  ``max_parallel`` at once, with a cursor (``next_time``) over the range.
- ``triggers``: a poll function's schedule and health; ``next_poll_at`` is claimed by one
  runner at a time.
- ``workflow_executions``: ``priority`` (backfill runs are lower than fresh ones),
  ``scheduled_for``, ``schedule_id``, ``backfill_id``, ``trigger_name``/``trigger_key``
  (the hash of a triggered context, for de-duplication while its run is active).
- ``task_executions.priority``: copied from the run, so claims can prefer fresh work.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workflow", sa.String(255), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("context", sa.Text, nullable=False, server_default="{}"),
        sa.Column("catchup", sa.String(8), nullable=False),
        sa.Column("max_catchup", sa.Integer, nullable=False),
        sa.Column("start_at", sa.Float, nullable=True),
        sa.Column("end_at", sa.Float, nullable=True),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(16), nullable=False, server_default="api"),
        sa.Column("package", sa.String(128), nullable=True),
        sa.Column("anchor_at", sa.Float, nullable=False),
        sa.Column("next_fire_at", sa.Float, nullable=True),
        sa.Column("last_fire_at", sa.Float, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_fire_at"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "schedule_id",
            sa.String(36),
            sa.ForeignKey("schedules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("scheduled_for", sa.Float, nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=True),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_fires_time"),
    )
    op.create_table(
        "backfills",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workflow", sa.String(255), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("context", sa.Text, nullable=False, server_default="{}"),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("only_missing", sa.Integer, nullable=False, server_default="1"),
        sa.Column("max_parallel", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("next_time", sa.Float, nullable=True),
        sa.Column("created_runs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ix_backfills_status", "backfills", ["status"])
    op.create_table(
        "triggers",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("workflow", sa.String(255), nullable=False),
        sa.Column("poll_interval", sa.Float, nullable=False),
        sa.Column("allow_concurrent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("source", sa.String(16), nullable=False, server_default="api"),
        sa.Column("package", sa.String(128), nullable=True),
        sa.Column("next_poll_at", sa.Float, nullable=False),
        sa.Column("last_polled_at", sa.Float, nullable=True),
        sa.Column("last_fired_at", sa.Float, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    for column in (
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("scheduled_for", sa.Float, nullable=True),
        sa.Column("schedule_id", sa.String(36), nullable=True),
        sa.Column("backfill_id", sa.String(36), nullable=True),
        sa.Column("trigger_name", sa.String(255), nullable=True),
        sa.Column("trigger_key", sa.String(64), nullable=True),
    ):
        op.add_column("workflow_executions", column)
    op.create_index(
        "ix_workflow_executions_scheduled",
        "workflow_executions",
        ["workflow_name", "scheduled_for"],
    )
    op.create_index(
        "ix_workflow_executions_backfill", "workflow_executions", ["backfill_id", "status"]
    )
    op.create_index(
        "ix_workflow_executions_trigger",
        "workflow_executions",
        ["trigger_name", "trigger_key", "status"],
    )
    op.add_column(
        "task_executions",
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("task_executions", "priority")
    op.drop_index("ix_workflow_executions_trigger", "workflow_executions")
    op.drop_index("ix_workflow_executions_backfill", "workflow_executions")
    op.drop_index("ix_workflow_executions_scheduled", "workflow_executions")
    with op.batch_alter_table("workflow_executions") as batch:
        for column in (
            "trigger_key",
            "trigger_name",
            "backfill_id",
            "schedule_id",
            "scheduled_for",
            "priority",
        ):
            batch.drop_column(column)
    op.drop_table("triggers")
    op.drop_table("backfills")
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
