"""Alerts: what the engine reports when something needs a person's attention.

Four rules raise them: a run failed (once per failed run, never per retry), a run passed its
deadline (the workflow's ``deadline=``), a worker was lost (its heartbeat stopped), and a
task was recovered after its worker crashed (run again, or failed when out of recoveries).
An alert is made by the transaction that makes the change, put in the outbox of every
channel that wants it in that same transaction, and handed to the runner's Python callbacks
once it commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloacina.store.alerts import LateRun, LostWorker, OutboxItem

RUN_FAILED = "run_failed"
RUN_DEADLINE = "run_deadline"
WORKER_LOST = "worker_lost"
TASK_RECOVERED = "task_recovered"
#: A channel's test (``cloacina alerts test``): delivered to that channel only.
TEST = "test"

#: The rules a channel may subscribe to (every one by default).
RULES: tuple[str, ...] = (RUN_FAILED, RUN_DEADLINE, WORKER_LOST, TASK_RECOVERED)


@dataclass(frozen=True)
class Alert:
    """One alert: ``rule`` says what happened, ``summary`` says it in a sentence, and
    ``details`` carries the facts (execution id, task, error, worker...)."""

    id: str
    rule: str
    at: float
    summary: str
    tenant: str
    dedupe_key: str
    workflow: str | None = None
    execution_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.at, tz=UTC)

    def payload(self) -> dict[str, Any]:
        """The JSON body a webhook receives."""
        return {
            "id": self.id,
            "rule": self.rule,
            "at": datetime.fromtimestamp(self.at, tz=UTC).isoformat(),
            "summary": self.summary,
            "tenant": self.tenant,
            "workflow": self.workflow,
            "execution_id": self.execution_id,
            **self.details,
        }

    def outbox_item(self) -> OutboxItem:
        return OutboxItem(self.rule, self.dedupe_key, self.workflow, json.dumps(self.payload()))


def _new_id() -> str:
    return str(uuid.uuid4())


def run_failed(
    tenant: str,
    execution_id: str,
    workflow: str,
    version: str,
    package: str,
    error: str | None,
    failed_tasks: Sequence[str],
    now: float,
) -> Alert:
    return Alert(
        id=_new_id(),
        rule=RUN_FAILED,
        at=now,
        summary=f"workflow {workflow!r} failed (execution {execution_id}): {error or 'failed'}",
        tenant=tenant,
        # A rerun that fails again is another failure: the time tells them apart.
        dedupe_key=f"{RUN_FAILED}:{execution_id}:{now:.6f}",
        workflow=workflow,
        execution_id=execution_id,
        details={
            "workflow_version": version,
            "package": package,
            "status": "failed",
            "error": error,
            "failed_tasks": list(failed_tasks),
        },
    )


def run_deadline(tenant: str, run: LateRun, now: float) -> Alert:
    late = now - run.deadline_at
    return Alert(
        id=_new_id(),
        rule=RUN_DEADLINE,
        at=now,
        summary=(
            f"workflow {run.workflow_name!r} (execution {run.id}) passed its deadline "
            f"{late:.1f}s ago and is {run.status}"
        ),
        tenant=tenant,
        dedupe_key=f"{RUN_DEADLINE}:{run.id}",
        workflow=run.workflow_name,
        execution_id=run.id,
        details={
            "workflow_version": run.workflow_version,
            "package": run.package,
            "status": run.status,
            "deadline_at": datetime.fromtimestamp(run.deadline_at, tz=UTC).isoformat(),
            "started_at": (
                None
                if run.started_at is None
                else datetime.fromtimestamp(run.started_at, tz=UTC).isoformat()
            ),
        },
    )


def worker_lost(tenant: str, worker: LostWorker, threshold: float, now: float) -> Alert:
    silent = now - worker.last_heartbeat
    return Alert(
        id=_new_id(),
        rule=WORKER_LOST,
        at=now,
        summary=(
            f"worker {worker.id} on {worker.host} (pid {worker.pid}) was lost: no heartbeat "
            f"for {silent:.1f}s (threshold {threshold:g}s)"
        ),
        tenant=tenant,
        dedupe_key=f"{WORKER_LOST}:{worker.id}:{worker.last_heartbeat:.3f}",
        details={
            "worker_id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "last_heartbeat": datetime.fromtimestamp(worker.last_heartbeat, tz=UTC).isoformat(),
        },
    )


def task_recovered(
    tenant: str,
    execution_id: str,
    workflow: str,
    task_id: str,
    attempt: int,
    recovery: int,
    outcome: str,
    error: str | None,
    now: float,
) -> Alert:
    """``outcome`` is ``requeued`` (it runs again) or ``failed`` (out of recoveries)."""
    what = "will run again" if outcome == "requeued" else "failed: out of recoveries"
    return Alert(
        id=_new_id(),
        rule=TASK_RECOVERED,
        at=now,
        summary=(
            f"task {task_id!r} of workflow {workflow!r} (execution {execution_id}) was taken "
            f"back from a worker that stopped responding and {what}"
        ),
        tenant=tenant,
        dedupe_key=f"{TASK_RECOVERED}:{execution_id}:{task_id}:{attempt}:{recovery}",
        workflow=workflow,
        execution_id=execution_id,
        details={
            "task_id": task_id,
            "attempt": attempt,
            "recovery": recovery,
            "outcome": outcome,
            "error": error,
        },
    )


def test_alert(tenant: str, channel: str, now: float) -> Alert:
    alert_id = _new_id()
    return Alert(
        id=alert_id,
        rule=TEST,
        at=now,
        summary=f"a test alert for channel {channel!r}",
        tenant=tenant,
        dedupe_key=f"{TEST}:{alert_id}",
        details={"channel": channel},
    )


test_alert.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def outbox_items(alerts: Sequence[Alert]) -> list[OutboxItem]:
    return [alert.outbox_item() for alert in alerts]
