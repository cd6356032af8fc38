"""The operations plane: API keys, the audit log, task logs, alerts, run deadlines.

- ``api_keys``: a key's hash (SHA-256 of its 32+ random bytes; never the key), role, tenant
  (NULL: every tenant), expiry and revocation. Used in the default tenant's database.
- ``audit_log``: append-only (triggers refuse UPDATE and DELETE on both backends).
- ``task_logs``: an attempt's captured stdout, stderr and logging records, in chunks written
  as the task runs (so a follower sees them while it runs).
- ``alert_channels``, ``alert_outbox``, ``alert_deliveries``: rules and where alerts go, the
  alerts waiting to be delivered (claimed like tasks), and every delivery attempt.
- ``workflow_executions.deadline_at`` / ``deadline_alerted``: a run's deadline (the workflow's
  ``deadline=``) and whether its alert was raised.
- An index on ``(created_at, id)`` (and one per status) for the first page of the execution
  list, newest first, with a stable cursor.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NO_CHANGE = "the audit log is append-only: its rows cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False, server_default=""),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(36), nullable=True),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False, server_default=""),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("client", sa.String(128), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "at"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_NO_CHANGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_NO_CHANGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()"
        )
    op.create_table(
        "task_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "execution_id",
            sa.String(36),
            sa.ForeignKey("workflow_executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_task_logs_attempt", "task_logs", ["execution_id", "task_id", "attempt", "id"]
    )
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("workflow", sa.String(255), nullable=True),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("name", name="uq_alert_channels_name"),
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "channel_id",
            sa.String(36),
            sa.ForeignKey("alert_channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("channel_id", "dedupe_key", name="uq_alert_outbox_dedupe"),
    )
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "outbox_id",
            sa.Integer,
            sa.ForeignKey("alert_outbox.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration", sa.Float, nullable=True),
    )
    op.create_index("ix_alert_deliveries_at", "alert_deliveries", ["at", "id"])
    op.add_column("workflow_executions", sa.Column("deadline_at", sa.Float, nullable=True))
    op.add_column(
        "workflow_executions",
        sa.Column("deadline_alerted", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_workflow_executions_page", "workflow_executions", ["created_at", "id"])
    op.create_index(
        "ix_workflow_executions_status_page",
        "workflow_executions",
        ["status", "created_at", "id"],
    )
    op.create_index(
        "ix_workflow_executions_deadline",
        "workflow_executions",
        ["deadline_alerted", "deadline_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_deadline", "workflow_executions")
    op.drop_index("ix_workflow_executions_status_page", "workflow_executions")
    op.drop_index("ix_workflow_executions_page", "workflow_executions")
    op.drop_column("workflow_executions", "deadline_alerted")
    op.drop_column("workflow_executions", "deadline_at")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_outbox")
    op.drop_table("alert_channels")
    op.drop_table("task_logs")
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse()")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
