"""Sub-workflows in the engine (DESIGN §11, ``subworkflow(...)``).

No worker slot waits for a child. When a sub-workflow task is claimed, the claim's
transaction either starts its child run (linked to the task's attempt, one level deeper) and
parks the task (running, held by no worker), or, when that attempt's child has already ended
(the child's end made the task ready again, see store/subworkflows.py), ends the attempt
with it: completed with the child's final context as its output, or failed with the child's
error, an outcome recorded by the next cycle as a body's is (so retries, dependents and the
run's end are as for any task; a retry starts a new child). The run-time depth limit stops a
recursion that decoration could not see.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING

from cloacina.engine.executor import COMPLETED, FAILED, Job, Outcome, build_context, condition_skip
from cloacina.engine.scheduler import INPUT_KEY
from cloacina.errors import TaskError
from cloacina.model.context import dumps_context
from cloacina.model.status import ExecutionStatus
from cloacina.model.subworkflow import MAX_DEPTH
from cloacina.model.workflow import Workflow, WorkflowCatalog
from cloacina.store.base import WriteTx
from cloacina.store.records import Claim, NewEvent, NewTask, RunOrigin
from cloacina.store.subworkflows import ChildRun, SubWrites, child_key

if TYPE_CHECKING:
    from cloacina.engine.scheduler import Effects, RunCache, Scheduler


def is_sub_parent(job: Job) -> bool:
    """A claim of a sub-workflow task."""
    return job.task.subworkflow is not None and job.claim.map_index is None


def child_outcome(job: Job, child: ChildRun, now: float) -> Outcome:
    """What an ended child means for its task's attempt."""
    claim, name = job.claim, job.task.subworkflow
    if child.status == ExecutionStatus.COMPLETED:
        return Outcome(claim, COMPLETED, output_json=child.final_context or "{}", finished_at=now)
    why = child.error or child.status
    if child.status == ExecutionStatus.CANCELLED:
        why = f"cancelled ({child.error})" if child.error else "cancelled"
    err = TaskError(
        f"sub-workflow {name!r} (child run {child.execution_id}) {child.status}: {why}",
        # A cancel is someone's decision, not a transient failure: no retry.
        retryable=child.status != ExecutionStatus.CANCELLED,
    )
    return Outcome(claim, FAILED, error=str(err), exc=err, finished_at=now)


class SubClaims:
    """The engine's side of sub-workflow tasks (a mixin of
    :class:`~cloacina.engine.engine.Engine`, which provides these attributes)."""

    tenant: str
    catalog: WorkflowCatalog
    scheduler: Scheduler
    cache: RunCache
    _maybe_ready: bool
    _expanded: bool
    _outcomes: list[Outcome]

    if TYPE_CHECKING:

        def _workflow(self, claim: Claim) -> Workflow | None: ...

        def _request_cycle(self, look: bool = False) -> None: ...

    def _start_children(self, tx: WriteTx, jobs: list[Job], now: float, fx: Effects) -> list[Job]:
        """Claimed sub-workflow tasks start their children or settle with them (no body runs
        for them); the rest of ``jobs`` are returned."""
        ended: list[Outcome] = []
        for job in jobs:
            if not is_sub_parent(job):
                continue
            if isinstance(tx, SubWrites):
                outcome = self._start_child(tx, tx, job, now, fx)
            else:  # a store without the statements (the in-memory one): the task fails
                err = TaskError(
                    f"task {job.task.id!r}: {type(tx).__name__} does not run sub-workflows; "
                    "use a SQLite or PostgreSQL store",
                    retryable=False,
                )
                outcome = Outcome(job.claim, FAILED, error=str(err), exc=err, finished_at=now)
            if outcome is not None:
                ended.append(outcome)
        if ended:
            # Recorded by the next cycle, as a body's outcome is: that cycle locks the runs
            # it settles first, in id order (settling here could lock a parent run after the
            # child runs this cycle locked, against a cancel that locks a family in order).
            # The claims hold meanwhile; a failed commit fences them out.
            self._outcomes.extend(ended)
            self._request_cycle()
        return [job for job in jobs if not is_sub_parent(job)]

    def _start_child(
        self, stx: SubWrites, tx: WriteTx, job: Job, now: float, fx: Effects
    ) -> Outcome | None:
        """Start the child of this attempt (None), or the outcome that ends the attempt."""
        claim, task = job.claim, job.task
        name = task.subworkflow
        assert name is not None
        key = child_key(claim.row_id, claim.attempt)
        child = stx.find_child(self.tenant, key)
        if child is not None:
            if child.status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
                stx.park_task(claim.row_id, claim.claim_token)  # not over yet: wait again
                return None
            if child.created_at is not None:  # the attempt started with its child
                stx.restore_start(claim.row_id, child.created_at)
                job.claim = dataclasses.replace(claim, started_at=child.created_at)
            return child_outcome(job, child, now)
        ctx = build_context(job.inputs, task)
        skipped = condition_skip(job, ctx)
        if skipped is not None:
            return skipped
        depth = stx.run_depth(claim.execution_id) + 1
        problem = None
        target = self.catalog.find(name)
        if depth > MAX_DEPTH:
            problem = (
                f"sub-workflow depth limit of {MAX_DEPTH} reached: this run is {depth - 1} "
                f"levels deep, so it cannot start workflow {name!r} (a workflow that runs "
                "itself through sub-workflows?)"
            )
        elif target is None:
            problem = (
                f"no workflow named {name!r} is known to this worker: define it with "
                "@workflow(name=...) in the worker's code, or register its package"
            )
        if problem is not None:
            err = TaskError(f"task {task.id!r}: {problem}", retryable=False)
            return Outcome(claim, FAILED, error=str(err), exc=err, finished_at=now)
        assert target is not None
        child_id = str(uuid.uuid4())
        input_json = dumps_context(ctx._data)
        tx.create_execution(
            child_id,
            tenant=self.tenant,
            package=target.package,
            workflow_name=target.name,
            workflow_version=target.version,
            input_json=input_json,
            tasks=[
                NewTask(tid, index, t.dependencies, t.retry.max_attempts)
                for index, (tid, t) in enumerate(target.tasks.items())
            ],
            now=now,
            package_id=target.origin.package_id if target.origin is not None else None,
            deadline_at=None if target.deadline is None else now + target.deadline,
            origin=RunOrigin(priority=claim.priority),
        )
        stx.link_child(child_id, claim.execution_id, task.id, depth, key)
        stx.park_task(claim.row_id, claim.claim_token)
        self.cache.stage(child_id, INPUT_KEY, input_json)  # kept if the transaction commits
        detail = json.dumps({"child": child_id, "workflow": target.name, "depth": depth})
        fx.events.extend(
            [
                NewEvent(claim.execution_id, task.id, "task_started", claim.attempt, None, now),
                NewEvent(
                    claim.execution_id, task.id, "subworkflow_started", claim.attempt, detail, now
                ),
                NewEvent(child_id, None, "execution_started", None, None, now),
            ]
        )
        self._maybe_ready = True  # the child's first tasks are ready
        self._expanded = True
        return None


# ---- cancel and pause reach the children ----------------------------------------------------
def lock_descendants(tx: WriteTx, execution_id: str) -> list[str]:
    """The unfinished runs below ``execution_id`` (children, theirs, ...), parents first.
    They and ``execution_id`` are locked together, in id order as every writer locks runs
    (see ``WriteTx.lock_runs``), before the cascade changes anything: call this before
    locking ``execution_id`` alone."""
    if not isinstance(tx, SubWrites):
        return []
    found: list[str] = []
    level = [execution_id]
    while level:
        level = tx.live_children(level)
        found.extend(level)
    if found:
        tx.lock_runs(sorted([execution_id, *found]))
    return found


def cancel_descendants(
    tx: WriteTx, execution_id: str, locked: list[str], now: float
) -> tuple[list[str], bool]:
    """``execution_id`` was just cancelled: cancel its unfinished descendants (``locked``
    by :func:`lock_descendants`, and any a claim made meanwhile), and, if it is a child
    itself, make its waiting task ready (it fails with "cancelled"). Returns the runs
    cancelled and whether a task was made ready here."""
    if not isinstance(tx, SubWrites):
        return [], False
    made = tx.child_ended(execution_id)
    done: list[str] = []
    late = [eid for eid in lock_descendants(tx, execution_id) if eid not in set(locked)]
    for eid in [*locked, *late]:
        reason = f"cancelled with its parent run: execution {execution_id} was cancelled"
        if tx.lock_run_status(eid) not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            continue
        running = tx.cancel_tasks(eid, "execution cancelled", now)
        if tx.finish_run(eid, ExecutionStatus.CANCELLED, now, final_json=None, error=reason):
            done.append(eid)
            detail = dumps_context({"running_tasks": running, "reason": reason})
            tx.add_events([NewEvent(eid, None, "execution_cancelled", None, detail, now)])
    return done, made


def set_descendants_status(
    tx: WriteTx,
    execution_id: str,
    locked: list[str],
    status: ExecutionStatus,
    from_status: ExecutionStatus,
    event: str,
    now: float,
) -> list[str]:
    """Pause (or resume) the descendants of a run just paused (resumed), ``locked`` by
    :func:`lock_descendants`: those in ``from_status``. Returns their ids."""
    done: list[str] = []
    for eid in locked:
        if tx.set_run_status(eid, status, (from_status,), now):
            done.append(eid)
            detail = dumps_context({"by_parent": execution_id})
            tx.add_events([NewEvent(eid, None, event, None, detail, now)])
    return done
