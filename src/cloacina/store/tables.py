"""The database schema as SQLAlchemy Core tables (the Alembic migrations create the same).

Times are stored as UNIX epoch seconds (floats): cheap to write and compare on every backend.
Contexts are stored as JSON text.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

workflow_executions = Table(
    "workflow_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False, server_default="public"),
    Column("package", String(128), nullable=False, server_default="embedded"),
    Column("workflow_name", String(255), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_context", Text, nullable=True),
    Column("final_context", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("tasks_total", Integer, nullable=False),
    Column("tasks_remaining", Integer, nullable=False),
    Column("tasks_failed", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("package_id", String(36), nullable=True),
    #: Whether the run's graph is in task_dependencies (runs from before 0004: no).
    Column("graph_stored", Integer, nullable=False, server_default="0"),
    Index("ix_workflow_executions_name", "workflow_name", "created_at"),
    #: When the run is past its deadline (the workflow's ``deadline=``), and whether its
    #: alert was raised.
    Column("deadline_at", Float, nullable=True),
    Column("deadline_alerted", Integer, nullable=False, server_default="0"),
    #: Claims prefer higher priority: a backfill's runs are below fresh ones.
    Column("priority", Integer, nullable=False, server_default="0"),
    #: The schedule time a scheduled or backfilled run stands for, and what started it.
    Column("scheduled_for", Float, nullable=True),
    Column("schedule_id", String(36), nullable=True),
    Column("backfill_id", String(36), nullable=True),
    Column("trigger_name", String(255), nullable=True),
    #: The hash of a triggered run's context: the same context starts no second run while
    #: this one is active.
    Column("trigger_key", String(64), nullable=True),
    #: Run control (0014): the caller's idempotency key and the hash of what it was
    #: submitted with; a sub-workflow's parent run and task, and its depth.
    Column("idempotency_key", String(255), nullable=True),
    Column("idempotency_fingerprint", String(64), nullable=True),
    Column("parent_execution_id", String(36), nullable=True),
    Column("parent_task_id", String(255), nullable=True),
    Column("depth", Integer, nullable=False, server_default="0"),
    Index("ix_workflow_executions_finished", "status", "finished_at"),
    # The execution list's pages, newest first, with a stable (created_at, id) cursor.
    Index("ix_workflow_executions_page", "created_at", "id"),
    Index("ix_workflow_executions_status_page", "status", "created_at", "id"),
    # Partial: an ordinary run has none of these and pays nothing for them (0013).
    Index(
        "ix_workflow_executions_deadline",
        "deadline_alerted",
        "deadline_at",
        sqlite_where=text("deadline_at IS NOT NULL"),
        postgresql_where=text("deadline_at IS NOT NULL"),
    ),
    Index(
        "ix_workflow_executions_scheduled",
        "workflow_name",
        "scheduled_for",
        sqlite_where=text("scheduled_for IS NOT NULL"),
        postgresql_where=text("scheduled_for IS NOT NULL"),
    ),
    Index(
        "ix_workflow_executions_backfill",
        "backfill_id",
        "status",
        sqlite_where=text("backfill_id IS NOT NULL"),
        postgresql_where=text("backfill_id IS NOT NULL"),
    ),
    Index(
        "ix_workflow_executions_trigger",
        "trigger_name",
        "trigger_key",
        "status",
        sqlite_where=text("trigger_name IS NOT NULL"),
        postgresql_where=text("trigger_name IS NOT NULL"),
    ),
    Index(
        "ux_workflow_executions_idempotency",
        "tenant",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index(
        "ix_workflow_executions_parent",
        "parent_execution_id",
        sqlite_where=text("parent_execution_id IS NOT NULL"),
        postgresql_where=text("parent_execution_id IS NOT NULL"),
    ),
)

task_executions = Table(
    "task_executions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("task_id", String(255), nullable=False),
    Column("task_index", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="1"),
    Column("recovery_count", Integer, nullable=False, server_default="0"),
    Column("deps_total", Integer, nullable=False, server_default="0"),
    Column("deps_remaining", Integer, nullable=False, server_default="0"),
    Column("deps_failed", Integer, nullable=False, server_default="0"),
    Column("deps_skipped", Integer, nullable=False, server_default="0"),
    Column("claim_token", String(64), nullable=True),
    Column("worker_id", String(64), nullable=True),  # the worker holding the claim
    Column("heartbeat_at", Float, nullable=True),
    Column("retry_at", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_traceback", Text, nullable=True),
    Column("skip_reason", Text, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    #: Dynamic fan-out (0015): an instance's mapped task (row id), index and item (JSON);
    #: on a mapped task's row, its instances' counters and the next index to make ready.
    Column("map_parent", Integer, nullable=True),
    Column("map_index", Integer, nullable=True),
    Column("map_item", Text, nullable=True),
    Column("map_total", Integer, nullable=True),
    Column("map_remaining", Integer, nullable=True),
    Column("map_failed", Integer, nullable=True),
    Column("map_next", Integer, nullable=True),
    UniqueConstraint("execution_id", "task_id", name="uq_task_executions_execution_task"),
    # Claims take ready tasks by priority, then in order (migration 0012).
    Index("ix_task_executions_claim", "status", text("priority DESC"), "id"),
    Index(
        "ix_task_executions_map",
        "map_parent",
        "map_index",
        sqlite_where=text("map_parent IS NOT NULL"),
        postgresql_where=text("map_parent IS NOT NULL"),
    ),
)

#: The run's graph: the dependencies of each task that has any (a JSON list of task ids, in
#: declared order), written once when the task is created.
task_dependencies = Table(
    "task_dependencies",
    metadata,
    Column(
        "execution_id",
        String(36),
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("task_id", String(255), primary_key=True),
    Column("dependencies", Text, nullable=False),
)

#: One row per finished attempt of a task (written by a trigger when a task leaves 'running').
task_attempts = Table(
    "task_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("task_id", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("recovery", Integer, nullable=False, server_default="0"),
    Column("outcome", String(16), nullable=False),
    Column("worker_id", String(64), nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=False),
    Column("error", Text, nullable=True),
    Column("error_traceback", Text, nullable=True),
    Column("skip_reason", Text, nullable=True),
    Index("ix_task_attempts_execution", "execution_id", "task_id", "id"),
)

task_outputs = Table(
    "task_outputs",
    metadata,
    Column(
        "task_execution_id",
        Integer,
        ForeignKey("task_executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("execution_id", String(36), nullable=False),
    Column("task_id", String(255), nullable=False),
    Column("context", Text, nullable=False),
    Index("ix_task_outputs_execution", "execution_id", "task_id"),
)

execution_events = Table(
    "execution_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), nullable=False),
    Column("task_id", String(255), nullable=True),
    Column("event", String(32), nullable=False),
    Column("attempt", Integer, nullable=True),
    Column("detail", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_execution_events_execution", "execution_id", "id"),
)

workflow_packages = Table(
    "workflow_packages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False, server_default="public"),
    Column("package", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("archive", LargeBinary, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("signature", LargeBinary, nullable=True),
    Column("signer", String(80), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant", "sha256", name="uq_workflow_packages_sha"),
    UniqueConstraint("tenant", "package", "version", name="uq_workflow_packages_version"),
)

package_workflows = Table(
    "package_workflows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "package_id",
        String(36),
        ForeignKey("workflow_packages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("workflow_name", String(255), nullable=False),
    Column("workflow_version", String(64), nullable=False),
    Index("ix_package_workflows_name", "workflow_name"),
)

#: The promoted default version of a package (none, or version NULL: the highest is the
#: default). ``serial`` grows on every change, so runners notice a promotion cheaply.
package_defaults = Table(
    "package_defaults",
    metadata,
    Column("tenant", String(64), nullable=False, server_default="public"),
    Column("package", String(128), nullable=False),
    Column("version", String(64), nullable=True),
    Column("promoted_at", Float, nullable=True),
    Column("serial", Integer, nullable=False),
    PrimaryKeyConstraint("tenant", "package", name="pk_package_defaults"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("last_heartbeat", Float, nullable=False),
    Column("running_tasks", Integer, nullable=False, server_default="0"),
    Column("max_tasks", Integer, nullable=False, server_default="0"),
    Column("version", String(32), nullable=False, server_default=""),
    Column("stopped_at", Float, nullable=True),
    Index("ix_workers_heartbeat", "last_heartbeat"),
)

#: API keys: only a hash of each key is kept (the key is shown once, when it is made). Used in
#: the default tenant's database; ``tenant`` NULL means the key serves every tenant.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("tenant", String(64), nullable=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False, server_default=""),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    UniqueConstraint("key_hash", name="uq_api_keys_hash"),
)

#: Every change made through a face (CLI, HTTP API, web UI). Append-only: database triggers
#: refuse UPDATE and DELETE. Used in the default tenant's database; ``tenant`` says where.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("key_id", String(36), nullable=True),
    Column("tenant", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False, server_default=""),
    Column("outcome", Text, nullable=False),
    Column("client", String(128), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_audit_log_at", "at", "id"),
    Index("ix_audit_log_action", "action", "at"),
)

#: An attempt's captured output (stdout, stderr, logging records) in chunks, written while it
#: runs so that a follower sees them.
task_logs = Table(
    "task_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "execution_id",
        String(36),
        ForeignKey("workflow_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("task_id", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("stream", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_task_logs_attempt", "execution_id", "task_id", "attempt", "id"),
)

#: Where alerts go (a webhook with its signing secret) and which rules feed it.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("rules", Text, nullable=False),  # a JSON list of rule names
    Column("workflow", String(255), nullable=True),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", name="uq_alert_channels_name"),
)

#: Alerts waiting to be delivered, claimed like tasks; one per (channel, dedupe key).
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "channel_id",
        String(36),
        ForeignKey("alert_channels.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("rule", String(32), nullable=False),
    Column("dedupe_key", String(255), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", Float, nullable=True),
    Column("delivered_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("channel_id", "dedupe_key", name="uq_alert_outbox_dedupe"),
    Index("ix_alert_outbox_due", "status", "next_attempt_at"),
)

#: Every attempt to deliver an alert.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "outbox_id",
        Integer,
        ForeignKey("alert_outbox.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("channel_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("worker_id", String(64), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration", Float, nullable=True),
    Index("ix_alert_deliveries_at", "at", "id"),
)

#: Cron schedules of workflows (per tenant). Only times strictly after ``anchor_at`` fire.
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("workflow", String(255), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("context", Text, nullable=False, server_default="{}"),
    Column("catchup", String(8), nullable=False),
    Column("max_catchup", Integer, nullable=False),
    Column("start_at", Float, nullable=True),
    Column("end_at", Float, nullable=True),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("source", String(16), nullable=False, server_default="api"),
    Column("package", String(128), nullable=True),
    Column("anchor_at", Float, nullable=False),
    Column("next_fire_at", Float, nullable=True),
    Column("last_fire_at", Float, nullable=True),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("name", name="uq_schedules_name"),
    Index("ix_schedules_due", "enabled", "next_fire_at"),
)

#: One row per (schedule, scheduled time): inserted with the run, in one transaction, so a
#: time fires exactly once however many runners share the database.
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "schedule_id",
        String(36),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scheduled_for", Float, nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("execution_id", String(36), nullable=True),
    Column("worker_id", String(64), nullable=True),
    UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_fires_time"),
)

#: A range of a workflow's scheduled times, run at most ``max_parallel`` at once.
backfills = Table(
    "backfills",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("context", Text, nullable=False, server_default="{}"),
    Column("start_at", Float, nullable=False),
    Column("end_at", Float, nullable=False),
    Column("only_missing", Integer, nullable=False, server_default="1"),
    Column("max_parallel", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("next_time", Float, nullable=True),
    Column("created_runs", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Index("ix_backfills_status", "status"),
)

#: Poll functions that start runs; ``next_poll_at`` is claimed by one runner at a time.
triggers = Table(
    "triggers",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("poll_interval", Float, nullable=False),
    Column("allow_concurrent", Integer, nullable=False, server_default="0"),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("source", String(16), nullable=False, server_default="api"),
    Column("package", String(128), nullable=True),
    Column("next_poll_at", Float, nullable=False),
    Column("last_polled_at", Float, nullable=True),
    Column("last_fired_at", Float, nullable=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
