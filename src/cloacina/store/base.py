"""The store interface: every query the engine needs, behind one abstraction.

The engine talks to a :class:`Store` and, inside one write transaction, to a :class:`WriteTx`.
Implementations hold all SQL (SQLite here; PostgreSQL plugs in behind the same interface).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from cloacina.model.status import ExecutionStatus, TaskStatus
from cloacina.store.alerts import AlertQueries, LateRun, LostWorker, OutboxItem
from cloacina.store.audit import AuditQueries, AuditRow
from cloacina.store.backfills import BackfillQueries, BackfillRow
from cloacina.store.feed import FeedQueries
from cloacina.store.keys import KeyQueries
from cloacina.store.logs import LogQueries
from cloacina.store.maintenance import MaintenanceQueries
from cloacina.store.packages import PackageQueries
from cloacina.store.records import (
    AttemptRow,
    Claim,
    Completion,
    CompletionResult,
    DependentState,
    EventRow,
    ExecutionRow,
    MapCounts,
    MapInstanceRow,
    NewEvent,
    NewLogChunk,
    NewTask,
    ReadyTask,
    RunOrigin,
    RunProgress,
    StaleClaim,
    TaskRow,
    WorkflowKey,
)
from cloacina.store.run_control import GraphTask, KeyedRun, RunControlQueries
from cloacina.store.schedules import ScheduleQueries, ScheduleRow
from cloacina.store.stats import StatsQueries
from cloacina.store.triggers import TriggerQueries


class WriteTx(abc.ABC):
    """The writes of one transaction. Commits when the ``with store.write()`` block ends."""

    @abc.abstractmethod
    def create_execution(
        self,
        execution_id: str,
        *,
        tenant: str,
        package: str,
        workflow_name: str,
        workflow_version: str,
        input_json: str,
        tasks: Sequence[NewTask],
        now: float,
        package_id: str | None = None,
        deadline_at: float | None = None,
        origin: RunOrigin | None = None,
    ) -> None:
        """Insert a running execution and its task rows (roots ``ready``, others ``pending``);
        ``deadline_at``: when it is late (the workflow's ``deadline=``), if it has one;
        ``origin``: its priority (copied to its tasks: claims prefer higher) and what
        started it (a schedule, a backfill, a trigger), if not a plain submission."""

    @abc.abstractmethod
    def claim_ready(
        self, limit: int, workflow_keys: Sequence[WorkflowKey], worker_id: str, now: float
    ) -> list[Claim]:
        """Claim up to ``limit`` ready tasks of running executions whose ``(name, version)``
        is in ``workflow_keys``: mark them running with a fresh claim token and a heartbeat."""

    @abc.abstractmethod
    def claim_pending(self, ready: Sequence[ReadyTask], worker_id: str, now: float) -> list[Claim]:
        """Claim tasks that just became runnable (pending -> running) without a search."""

    def claim_next(
        self,
        pending: Sequence[ReadyTask],
        ready_limit: int,
        workflow_keys: Sequence[WorkflowKey],
        worker_id: str,
        now: float,
    ) -> tuple[list[Claim], list[Claim]]:
        """``claim_pending(pending)`` and ``claim_ready(ready_limit)`` together (one round
        trip where the backend can): the claims of each."""
        direct = self.claim_pending(pending, worker_id, now) if pending else []
        found = (
            self.claim_ready(ready_limit, workflow_keys, worker_id, now) if ready_limit > 0 else []
        )
        return direct, found

    @abc.abstractmethod
    def finish_task(
        self,
        claim: Claim,
        status: TaskStatus,
        now: float,
        *,
        error: str | None = None,
        traceback: str | None = None,
        skip_reason: str | None = None,
    ) -> bool:
        """Record a claimed task's terminal status; False if the claim was lost (fenced)."""

    def complete_task(self, claim: Claim, output_json: str, now: float) -> bool:
        """Record a claimed task as completed with its output; False if fenced out."""
        if not self.finish_task(claim, TaskStatus.COMPLETED, now):
            return False
        self.save_output(claim.row_id, claim.execution_id, claim.task_id, output_json)
        return True

    def complete_tasks(self, items: Sequence[Completion], now: float) -> CompletionResult:
        """Record a batch of completions: each fenced by its claim, with its output; bump
        the dependents of those that held by one per completed dependency; count them off
        their runs. Backends may do it all in one statement."""
        result = CompletionResult([], {}, {})
        counts: dict[str, int] = {}
        for item in items:
            claim = item.claim
            if not self.complete_task(claim, item.output_json, item.finished_at):
                continue
            result.completed.append(item)
            eid = claim.execution_id
            counts[eid] = counts.get(eid, 0) + 1
            if item.dependents:
                states = result.dependents.setdefault(eid, {})
                for state in self.bump_dependents(eid, item.dependents, 0, 0):
                    states[state.row_id] = state
        for eid, count in counts.items():
            result.progress[eid] = self.run_progress(eid, count, 0, now)
        return result

    def lock_runs(self, execution_ids: Sequence[str]) -> None:
        """Lock these runs' rows, in id order, before touching their tasks. Every
        transaction that changes a run's tasks takes its run first, so two workers settling
        tasks of the same runs never deadlock. (A no-op where the database has one writer.)"""
        return None

    @abc.abstractmethod
    def schedule_retry(
        self, claim: Claim, retry_at: float, error: str, traceback: str | None, now: float
    ) -> bool:
        """Put a failed task back to ``ready`` not before ``retry_at``; False if fenced.
        ``now`` is when the attempt failed (its record's finish, by the engine's clock, which
        also stamped its start)."""

    @abc.abstractmethod
    def save_output(self, row_id: int, execution_id: str, task_id: str, context_json: str) -> None:
        """Store a task's output context."""

    @abc.abstractmethod
    def bump_dependents(
        self, execution_id: str, task_ids: Sequence[str], failed: int, skipped: int
    ) -> list[DependentState]:
        """One dependency of each pending task in ``task_ids`` settled; return their counters."""

    @abc.abstractmethod
    def mark_ready(self, row_ids: Sequence[int]) -> None:
        """Pending tasks whose trigger rule says run become ``ready``."""

    @abc.abstractmethod
    def mark_skipped(self, row_id: int, reason: str, now: float) -> bool:
        """A pending task whose trigger rule says skip becomes ``skipped``."""

    @abc.abstractmethod
    def run_progress(self, execution_id: str, settled: int, failed: int, now: float) -> RunProgress:
        """``settled`` more tasks of the run are terminal (``failed`` of them failed)."""

    @abc.abstractmethod
    def finish_run(
        self,
        execution_id: str,
        status: ExecutionStatus,
        now: float,
        *,
        final_json: str | None,
        error: str | None,
    ) -> bool:
        """Mark an execution terminal (only from running or paused)."""

    @abc.abstractmethod
    def add_events(self, events: Sequence[NewEvent]) -> None:
        """Append rows to the execution event log."""

    def add_task_logs(self, chunks: Sequence[NewLogChunk]) -> None:
        """Append chunks of attempts' captured output (of runs that still exist)."""
        raise NotImplementedError(f"{type(self).__name__} does not store task logs")

    @abc.abstractmethod
    def hand_back(self, claims: Sequence[Claim]) -> list[Claim]:
        """Put claimed tasks that never started back to ``ready`` (not counted as an attempt
        or a recovery), if their claim still holds; the ones handed back."""

    @abc.abstractmethod
    def requeue_stale(self, stale: StaleClaim, max_age: float) -> bool:
        """Take back a stale claim: the task becomes ``ready`` again (recovery counted).
        Only if its holder's heartbeat is still more than ``max_age`` seconds old by the
        database's clock, judged in the same statement."""

    @abc.abstractmethod
    def fail_stale(self, stale: StaleClaim, error: str, now: float, max_age: float) -> bool:
        """Fail a stale claim that ran out of recovery attempts (if it is still stale, as
        :meth:`requeue_stale` judges it)."""

    @abc.abstractmethod
    def reset_tasks(
        self, execution_id: str, task_ids: Sequence[str], now: float
    ) -> list[DependentState]:
        """Make these tasks of a run ``pending`` again (a rerun): their claims, errors and
        outputs cleared, their attempt numbers kept (every earlier attempt stays in
        ``task_attempts``); every pending task's dependency counters and the run's counters
        are recomputed from the rows, and the run is ``running`` again. Returns the reset
        tasks' counters: the caller judges by their trigger rules those whose dependencies
        are all settled. For a run that is not running."""

    @abc.abstractmethod
    def add_tasks(
        self, execution_id: str, tasks: Sequence[NewTask], now: float
    ) -> list[DependentState]:
        """Add tasks to a run that has started (dynamic fan-out), ``pending``, with their
        own dependencies; counters recomputed from the rows. Returns the new tasks'
        counters (the caller judges those whose dependencies are all settled)."""

    @abc.abstractmethod
    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        """Output contexts (JSON) of the given tasks that have one."""

    def get_outputs_of_runs(self, wanted: dict[str, list[str]]) -> dict[str, dict[str, str]]:
        """Output contexts of several runs' tasks (``{execution id: [task id, ...]}``), by
        run and task, for those that have one."""
        return {eid: self.get_outputs(eid, task_ids) for eid, task_ids in wanted.items()}

    @abc.abstractmethod
    def failed_task_errors(self, execution_id: str) -> list[tuple[str, str | None]]:
        """``(task_id, error)`` of the run's failed tasks, in task order."""

    @abc.abstractmethod
    def get_input(self, execution_id: str) -> str:
        """The run's input context (JSON)."""

    @abc.abstractmethod
    def lock_run_status(self, execution_id: str) -> ExecutionStatus | None:
        """Lock the run's row for the rest of the transaction and return its status (None:
        no such run), so that a decision taken on it holds until the commit."""

    @abc.abstractmethod
    def set_run_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        from_statuses: Sequence[ExecutionStatus],
        now: float,
    ) -> bool:
        """Change a run's status if it is in one of ``from_statuses``."""

    @abc.abstractmethod
    def cancel_tasks(self, execution_id: str, reason: str, now: float) -> list[str]:
        """Skip every unfinished task of a run (clearing claims); return the ids of those that
        were running."""

    # ---- run control (store/run_control.py) ---------------------------------------------------
    def claim_idempotency_key(
        self, execution_id: str, tenant: str, key: str, fingerprint: str
    ) -> KeyedRun | None:
        """Give the run made in this transaction an idempotency key; the run that holds it
        already, if any (see :class:`~cloacina.store.run_control.RunControlWrites`)."""
        raise NotImplementedError(f"{type(self).__name__} does not store idempotency keys")

    def run_graph(self, execution_id: str) -> list[GraphTask]:
        """The run's tasks with their status, skip reason and dependencies."""
        raise NotImplementedError(f"{type(self).__name__} does not rerun runs")

    def record_skipped(self, execution_id: str, task_ids: Sequence[str], now: float) -> None:
        """Tasks skipped without starting keep their verdict as attempt 1 (before a rerun)."""
        raise NotImplementedError(f"{type(self).__name__} does not rerun runs")

    def switch_version(self, execution_id: str, version: str, package_id: str | None) -> None:
        """Pin the run to another version of its workflow."""
        raise NotImplementedError(f"{type(self).__name__} does not rerun runs")

    def rerun_base(self, execution_id: str, task_id: str) -> int:
        """Attempts the task had made before the run's last rerun reset it (0: none)."""
        return 0

    def rerun_patches(self, execution_ids: Sequence[str]) -> dict[str, tuple[set[str], str]]:
        """The context each run's last rerun merges over its first tasks' input."""
        return {}

    # ---- audit (store/audit.py) -----------------------------------------------------------------
    def add_audit(self, row: AuditRow) -> None:
        """Append a row to the audit log (see :class:`~cloacina.store.audit.AuditWrites`)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no audit log")

    # ---- alerts (store/alerts.py; a backend without an outbox raises none) -------------------
    def enqueue_alerts(self, items: Sequence[OutboxItem], now: float) -> None:
        """Put each alert in the outbox of every enabled channel that wants it."""
        return None

    def mark_late_runs(self, now: float, limit: int = 100) -> list[LateRun]:
        """Runs past their deadline not yet reported: marked, and returned (see
        :class:`~cloacina.store.alerts.AlertWrites`)."""
        return []

    def mark_lost_workers(self, max_age: float, except_worker: str) -> list[LostWorker]:
        """Running workers silent for over ``max_age`` seconds: marked ``lost``, returned."""
        return []

    # ---- triggers (store/triggers.py) --------------------------------------------------------
    def lock_trigger(self, name: str) -> bool | None:
        """Lock the trigger's row until the commit; whether it is enabled (None: no such
        trigger). See :class:`~cloacina.store.triggers.TriggerWrites`."""
        raise NotImplementedError(f"{type(self).__name__} does not store triggers")

    def active_triggered_run(self, name: str, key: str) -> str | None:
        """An unfinished run this trigger started with this context key, if any."""
        raise NotImplementedError(f"{type(self).__name__} does not store triggers")

    def mark_triggered(self, name: str, now: float) -> None:
        """The trigger started a run: its last fire time, its failures forgotten."""
        raise NotImplementedError(f"{type(self).__name__} does not store triggers")

    # ---- schedules (store/schedules.py) -------------------------------------------------------
    def lock_schedule(
        self, schedule_id: str, now: float | None
    ) -> tuple[ScheduleRow, float] | None:
        """Lock a schedule's row until the commit and read it, with the time to judge it by
        (None: gone, or being fired by another transaction). See
        :class:`~cloacina.store.schedules.ScheduleWrites`."""
        raise NotImplementedError(f"{type(self).__name__} does not store schedules")

    def insert_fire(
        self,
        schedule_id: str,
        scheduled_for: float,
        fired_at: float,
        execution_id: str,
        worker_id: str,
    ) -> bool:
        """Record a scheduled time's fire; False if it fired already (its unique key)."""
        raise NotImplementedError(f"{type(self).__name__} does not store schedules")

    def advance_schedule(
        self,
        schedule_id: str,
        anchor_at: float,
        next_fire_at: float | None,
        last_fire_at: float | None,
    ) -> None:
        """Every time of the schedule up to ``anchor_at`` is handled."""
        raise NotImplementedError(f"{type(self).__name__} does not store schedules")

    # ---- backfills (store/backfills.py) --------------------------------------------------------
    def claim_backfill(self, backfill_id: str) -> BackfillRow | None:
        """Lock a running backfill's row until the commit (None: not running, or being
        paced by another runner). See :class:`~cloacina.store.backfills.BackfillWrites`."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def backfill_runs_by_status(self, backfill_id: str) -> dict[str, int]:
        """How many of the backfill's runs are in each status."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def scheduled_times_taken(self, workflow: str, times: Sequence[float]) -> set[float]:
        """Which of ``times`` already have a run of ``workflow`` scheduled for them."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def advance_backfill(
        self, backfill_id: str, next_time: float | None, created: int, skipped: int, now: float
    ) -> None:
        """Move a backfill's cursor and count the runs made and times skipped."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")

    def finish_backfill(self, backfill_id: str, status: str, now: float) -> bool:
        """A running backfill whose runs have all ended is ``completed`` or ``failed``."""
        raise NotImplementedError(f"{type(self).__name__} does not store backfills")


class RunStore(abc.ABC):
    """What the engine needs to run executions: write transactions and the two reads of
    its timers. Thread-safe."""

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[WriteTx]:
        """A write transaction (serialised within this process)."""

    @abc.abstractmethod
    def find_stale(self, max_age: float, limit: int = 100) -> list[StaleClaim]:
        """Running tasks whose worker's heartbeat is more than ``max_age`` seconds old, by
        the database's clock."""

    @abc.abstractmethod
    def has_ready(self, now: float, workflow_keys: Sequence[WorkflowKey]) -> bool:
        """Whether a task of one of ``workflow_keys`` (``(name, version)``) is ready to be
        claimed now (a read, no lock)."""

    @abc.abstractmethod
    def runs_waiting_for_code(
        self, names: Sequence[str], known: Sequence[WorkflowKey], limit: int = 20
    ) -> list[tuple[str, str, str]]:
        """``(execution id, workflow name, version)`` of running runs with ready tasks of a
        workflow named in ``names`` at a version not in ``known``: work this worker
        knows by name but holds no code for."""

    def listen(
        self,
        on_ready: Callable[[], object],
        on_finished: Callable[[str], object] | None = None,
    ) -> Callable[[], None]:
        """Call ``on_ready`` when another process makes work ready and ``on_finished(id)`` when
        a run ends (PostgreSQL NOTIFY); returns a function that stops listening. Backends
        without notifications rely on polling."""
        return lambda: None

    @property
    def notifying(self) -> bool:
        """Whether a listener is connected right now, so that runs ending in other processes
        are heard of at once (waiters then need not poll often)."""
        return False


class ExecutionQueries(abc.ABC):
    """Reading executions: what every face (CLI, HTTP API, web UI) shows."""

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    @abc.abstractmethod
    def get_tasks(self, execution_id: str, task_id: str | None = None) -> list[TaskRow]:
        """The run's tasks in their order, not a mapped task's instances (only
        ``task_id``'s row when given, which may name an instance: ``"process[7]"``)."""

    @abc.abstractmethod
    def get_attempts(self, execution_id: str, task_id: str | None = None) -> list[AttemptRow]:
        """Every finished attempt of every task of the run (of ``task_id`` only, when
        given), in the order they ended (a task's current completed attempt comes from its
        row, with ``id`` 0)."""

    @abc.abstractmethod
    def get_events(self, execution_id: str, after_id: int = 0) -> list[EventRow]: ...

    @abc.abstractmethod
    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        """Output contexts (JSON) of the given tasks that have one."""

    @abc.abstractmethod
    def list_executions(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRow]:
        """Runs newest first (by ``(created_at, id)``), at most ``limit``; only those with
        ``status``, of ``workflow_name``, created at or after ``since`` and before ``until``
        (epoch seconds), whose id or error contains ``q`` (case-insensitive), and that sort
        after ``before`` (the ``(created_at, id)`` of the previous page's last run) when
        given. The first page of a long list is read from an index, not sorted."""

    @abc.abstractmethod
    def find_executions(self, id_prefix: str, limit: int = 10) -> list[ExecutionRow]:
        """Executions whose id starts with ``id_prefix`` (for short ids in the CLI)."""

    @abc.abstractmethod
    def execution_status(self, execution_id: str) -> ExecutionStatus | None: ...

    # ---- mapped tasks (store/fanout.py) ---------------------------------------------------
    def map_counts(
        self, execution_id: str, parents: Sequence[tuple[str, int, int]]
    ) -> dict[str, MapCounts]:
        """The instances of each mapped task (``(task id, row id, total)``) by status, with
        the first failed indexes (see :class:`~cloacina.store.fanout.MapReads`)."""
        raise NotImplementedError(f"{type(self).__name__} does not run mapped tasks")

    def map_instances(
        self,
        execution_id: str,
        task_id: str,
        *,
        after_index: int = -1,
        limit: int = 100,
        status: str | None = None,
    ) -> list[MapInstanceRow]:
        """A page of a mapped task's instances, by index, after ``after_index``."""
        raise NotImplementedError(f"{type(self).__name__} does not run mapped tasks")

    @abc.abstractmethod
    def count_unfinished(self) -> int:
        """How many executions are running or paused."""

    @abc.abstractmethod
    def count_executions_by_status(
        self,
        *,
        workflow_name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
    ) -> dict[str, int]:
        """How many runs there are of each status (statuses without runs left out), under
        the filters of :meth:`list_executions`."""


class Store(
    RunStore,
    ExecutionQueries,
    PackageQueries,
    MaintenanceQueries,
    KeyQueries,
    AuditQueries,
    BackfillQueries,
    FeedQueries,
    AlertQueries,
    LogQueries,
    StatsQueries,
    TriggerQueries,
    ScheduleQueries,
    RunControlQueries,
):
    """A database holding workflow executions, registered packages and workers: the run
    store, the queries of the faces, the packages, the workers, alerting and task logs, by
    concern (and, in the default tenant's database, the API keys and the audit log)."""

    url: str

    @abc.abstractmethod
    def close(self) -> None: ...
