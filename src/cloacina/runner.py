"""``DefaultRunner``: schedule, run and inspect workflow executions in this process."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from cloacina._about import __version__
from cloacina.async_twins import AsyncTwins
from cloacina.clock import SYSTEM_CLOCK, Clock, SystemClock
from cloacina.engine.engine import Engine
from cloacina.engine.subworkflows import (
    cancel_descendants,
    lock_descendants,
    set_descendants_status,
)
from cloacina.errors import (
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    InvalidStateError,
    RunnerClosedError,
    SettingsError,
    WorkflowNotFoundError,
)
from cloacina.model.context import Context, as_context_dict, dumps_context
from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.model.status import (
    TERMINAL_EXECUTION,
    ExecutionStatus,
    WorkflowResult,
)
from cloacina.model.trigger import TriggerCatalog, trigger_catalog
from cloacina.model.workflow import (
    CatalogView,
    Workflow,
    WorkflowCatalog,
    catalog,
    workflow_of,
)
from cloacina.packaging.archive import DEFAULT_LIMITS, Limits
from cloacina.registry.loader import PackageLoader
from cloacina.registry.registry import PackageInfo, PackageRegistry, WorkflowRef
from cloacina.service.alerts import AlertService
from cloacina.service.audit import audit_row, current_actor, recorded_inline
from cloacina.service.audited import (
    audit_package_register,
    audit_package_version,
    audit_run,
    audit_run_start,
)
from cloacina.service.backfills import BackfillService
from cloacina.service.executions import ExecutionService
from cloacina.service.feed import EventFeed
from cloacina.service.keys import KeysMixin
from cloacina.service.logs import LogService
from cloacina.service.metrics import MetricsService
from cloacina.service.run_control import (
    KeyTaken,
    RunControlService,
    fingerprint,
    keyed_result,
)
from cloacina.service.schedules import ScheduleService
from cloacina.service.stats import StatsService
from cloacina.service.tenants import TenantService
from cloacina.service.triggers import TriggerService
from cloacina.settings import Settings
from cloacina.store import Store, open_store
from cloacina.store.records import NewEvent, NewTask, WorkerRow

log = logging.getLogger("cloacina.runner")

ContextArg = Context | Mapping[str, Any] | None


def _nothing() -> None:
    return None


#: A cancelled run's error when its canceller gave no reason.
CANCELLED = "cancelled by request"

#: Longest worker id the store keeps (``workers.id``, ``task_executions.worker_id``).
WORKER_ID_MAX = 64
#: Longest host name the store keeps (``workers.host``).
HOST_MAX = 255


#: The old names (a runner that executes tasks is a worker).
RUNNER_ID_MAX = WORKER_ID_MAX


def make_worker_id(host: str, pid: int) -> str:
    """``host:pid:random`` in at most :data:`WORKER_ID_MAX` characters: a long host name (a
    Kubernetes pod's) is cut short, the pid and the random suffix that make it unique stay."""
    tail = f":{pid}:{uuid.uuid4().hex[:8]}"
    return f"{host[: max(0, WORKER_ID_MAX - len(tail))]}{tail}"[-WORKER_ID_MAX:]


class DefaultRunner(
    ExecutionService,
    TenantService,
    EventFeed,
    KeysMixin,
    MetricsService,
    StatsService,
    AlertService,
    LogService,
    TriggerService,
    BackfillService,
    ScheduleService,
    RunControlService,
    AsyncTwins,
):
    """Runs workflows durably on a database (SQLite by default), in this process.

    ``DefaultRunner("sqlite:///cloacina.db", max_concurrent_tasks=8)``; use it as a context
    manager or call :meth:`shutdown`. The keywords ``max_concurrent_tasks``,
    ``poll_interval``, ``heartbeat_interval``, ``stale_claim_threshold``, ``max_recoveries``,
    ``shutdown_grace``, ``retention``, ``max_package_processes``, ``busy_timeout`` (SQLite),
    ``pool_size``, ``max_overflow``, ``pool_timeout``, ``connect_timeout`` (PostgreSQL),
    ``max_log_bytes`` (how much of each task attempt's output is kept), ``alert_timeout``,
    ``alert_max_attempts``, ``alert_retry_delay`` (webhook delivery) are settings
    (:class:`cloacina.settings.Settings`, which holds their defaults, units and bounds): one
    given here wins over its ``CLOACINA_*`` environment variable, which wins
    over the default; durations are seconds (or a timedelta, or text such as ``"500ms"``).
    ``settings=Settings(...)`` passes them as one object, taken as it is (the environment is
    not read); keywords still override it. A bad value raises
    :class:`~cloacina.errors.SettingsError` (a ``ValueError``). ``url`` is
    ``sqlite:///path.db`` or ``postgresql://user@host/db``; ``tenant`` picks the tenant's
    own schema (PostgreSQL) or file (SQLite).
    ``execute_tasks=False`` makes a submit-only client: it schedules, waits and inspects,
    and leaves the work to ``cloacina worker`` processes. ``read_only=True`` (with
    ``execute_tasks=False``) only inspects: it migrates and writes nothing, so it works on a
    database it cannot write (a read-only SQLite file, a PostgreSQL role without CREATE).
    ``clock`` (default :data:`cloacina.clock.SYSTEM_CLOCK`) is read by every time-based
    decision: schedules and retry delays (tests pass a :class:`cloacina.testing.FakeClock`).
    A runner that executes tasks polls the ``@trigger`` functions of ``triggers`` (default:
    every one defined in this process) whose workflow it knows.
    """

    def __init__(
        self,
        url: str = "sqlite:///cloacina.db",
        *,
        max_concurrent_tasks: int | None = None,
        poll_interval: float | None = None,
        heartbeat_interval: float | None = None,
        stale_claim_threshold: float | None = None,
        max_recoveries: int | None = None,
        shutdown_grace: float | None = None,
        busy_timeout: float | None = None,
        tenant: str = DEFAULT_TENANT,
        workflows: WorkflowCatalog | None = None,
        execute_tasks: bool = True,
        require_signatures: bool = False,
        trusted_keys: Iterable[str | bytes | Path] = (),
        package_limits: Limits | None = None,
        max_package_processes: int | None = None,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
        connect_timeout: float | None = None,
        max_log_bytes: int | None = None,
        alert_timeout: float | None = None,
        alert_max_attempts: int | None = None,
        alert_retry_delay: float | None = None,
        retention: float | timedelta | None = None,
        read_only: bool = False,
        settings: Settings | None = None,
        clock: Clock = SYSTEM_CLOCK,
        triggers: TriggerCatalog | None = None,
    ) -> None:
        if read_only and execute_tasks:
            raise SettingsError("read_only=True needs execute_tasks=False: a reader runs no tasks")
        # One place checks every setting, the same for this API and the CLI.
        self.settings: Settings = Settings.resolve(
            {
                "max_concurrent_tasks": max_concurrent_tasks,
                "poll_interval": poll_interval,
                "heartbeat_interval": heartbeat_interval,
                "stale_claim_threshold": stale_claim_threshold,
                "max_recoveries": max_recoveries,
                "shutdown_grace": shutdown_grace,
                "retention": retention,
                "max_package_processes": max_package_processes,
                "busy_timeout": busy_timeout,
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_timeout": pool_timeout,
                "connect_timeout": connect_timeout,
                "max_log_bytes": max_log_bytes,
                "alert_timeout": alert_timeout,
                "alert_max_attempts": alert_max_attempts,
                "alert_retry_delay": alert_retry_delay,
            },
            base=settings,
        )
        self.url = url
        self.tenant = tenant
        #: The clock of every time-based decision (schedules, retry delays).
        self.clock = clock
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now
        self.execute_tasks = execute_tasks
        # Packages registered in this runner's database, over the workflows of this process.
        self.packages = WorkflowCatalog()
        self.catalog = CatalogView(self.packages, workflows or catalog)
        self.host = socket.gethostname()[:HOST_MAX]
        self.worker_id = make_worker_id(self.host, os.getpid())
        self.store: Store = open_store(
            url,
            tenant=tenant,
            busy_timeout=self.settings.busy_timeout,
            pool_size=self.settings.pool_size,
            max_overflow=self.settings.max_overflow,
            pool_timeout=self.settings.pool_timeout,
            connect_timeout=self.settings.connect_timeout,
            read_only=read_only,
        )
        try:
            self.registry = PackageRegistry(
                self.store,
                self.packages,
                tenant=tenant,
                require_signatures=require_signatures,
                trusted_keys=trusted_keys,
                limits=package_limits or DEFAULT_LIMITS,
            )
            self.registry.sync(force=True)
        except BaseException:
            self.store.close()
            raise
        # A client runs no tasks: no package processes, and no temporary directory for them
        # (its engine is never started, so nothing would remove one).
        loader = (
            PackageLoader(
                self.registry.fetch,
                self.settings.max_package_processes or self.settings.max_concurrent_tasks,
                tenant,
            )
            if execute_tasks
            else None
        )
        self._engine = Engine(
            self.store,
            self.catalog,
            self.worker_id,
            self.settings,
            tenant,
            loader=loader,
            on_poll=self.registry.sync,
            clock=clock,
        )
        # A submit-only client still hears when runs end (PostgreSQL NOTIFY), so that wait()
        # returns at once instead of at the next poll.
        self._unlisten: Callable[[], None] = _nothing
        if not execute_tasks:
            self._unlisten = self.store.listen(_nothing, self._engine.notify_external)
        if execute_tasks:
            now = time.time()
            self.store.register_worker(
                WorkerRow(
                    id=self.worker_id,
                    host=self.host,
                    pid=os.getpid(),
                    status="running",
                    started_at=now,
                    last_heartbeat=now,
                    running_tasks=0,
                    max_tasks=self.settings.max_concurrent_tasks,
                    version=__version__,
                    stopped_at=None,
                )
            )
            self._engine.start()
        self._task_rows: dict[tuple[str, str], list[NewTask]] = {}
        self._closed = False
        self._close_lock = threading.Lock()
        if execute_tasks:
            # Record and poll the @trigger functions this runner knows (service/triggers.py).
            try:
                self._start_triggers(trigger_catalog if triggers is None else triggers)
                # Make the runs of running backfills (service/backfills.py).
                self._start_backfills()
                # Fire the due cron schedules (service/schedules.py).
                self._start_schedules()
            except BaseException:
                self.shutdown(wait=False)
                raise

    # ---- context manager -------------------------------------------------------------------
    def __enter__(self) -> DefaultRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def __aenter__(self) -> DefaultRunner:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown_async()

    # ---- running ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RunnerClosedError("this DefaultRunner was shut down; create a new one")

    @property
    def runner_id(self) -> str:
        """The old name of :attr:`worker_id`: this runner's id as a worker (its row in
        ``workers``, and the holder named on the tasks it claims)."""
        return self.worker_id

    def resolve(self, name: str | type | Workflow) -> Workflow:
        """The workflow behind a name, a decorated class or a :class:`Workflow`.

        A name is ``workflow``, ``package::workflow``, ``workflow@version`` or
        ``package::workflow@version``, where ``version`` is the package's (``etl@1.2.0``).
        A plain name means the default version (the promoted one, else the highest) of the
        registered package that owns the name, else a workflow defined in this process;
        ``package::workflow`` may name a ``@packaged_workflow`` defined in this process too.
        """
        if not isinstance(name, str):
            return workflow_of(name)
        ref = WorkflowRef.parse(name)
        if not ref.qualified:
            try:
                return self.catalog.get(name)
            except WorkflowNotFoundError:
                # Registered meanwhile by another process? (Another thread may be loading it
                # right now: sync waits for that, so look again whatever sync returns.)
                self.registry.sync()
                return self.catalog.get(name)
        found = self.registry.lookup(ref)
        if found is None:
            self.registry.sync()
            found = self.registry.lookup(ref)
        if found is None and ref.version is None:
            here = self.catalog.second.find(ref.workflow)
            if here is not None and here.package == ref.package:
                found = here
        if found is None:
            raise WorkflowNotFoundError(f"{self.registry.missing(ref)}")
        return found

    @audit_run_start()
    def schedule_workflow(
        self,
        name: str | type | Workflow,
        context: ContextArg = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run of workflow ``name`` (see :meth:`resolve`: ``package::workflow@version``
        and the rest) and return its execution id at once. ``idempotency_key`` (at most 255
        characters): a key some run of this tenant holds returns that run's id instead, or
        raises :class:`~cloacina.errors.IdempotencyConflictError` if it was given another
        workflow or context; one run per key, however many submit it at once."""
        return self._schedule(name, context, idempotency_key)[0]

    @audit_run_start()
    def start_run(
        self,
        name: str | type | Workflow,
        context: ContextArg = None,
        idempotency_key: str | None = None,
    ) -> tuple[str, bool]:
        """:meth:`schedule_workflow`, saying whether the run is new (False: an earlier
        submission with ``idempotency_key`` made it)."""
        return self._schedule(name, context, idempotency_key)

    def _schedule(
        self, name: str | type | Workflow, context: ContextArg, idempotency_key: str | None
    ) -> tuple[str, bool]:
        self._check_open()
        wf = self.resolve(name)
        if self.catalog.find(wf.name, wf.version) is None:
            self.catalog.add(wf)  # a Workflow object passed directly, or another catalog's
        data = as_context_dict(context)
        input_json = dumps_context(data)
        fp = ""
        if idempotency_key is not None:
            found = self._find_keyed(idempotency_key, wf.name, data)
            if found is not None:  # the usual repeat: one indexed read
                return found, False
            fp = fingerprint(wf.name, data)
        execution_id = str(uuid.uuid4())
        now = self._now()
        specs = self._task_rows.get((wf.name, wf.version))
        if specs is None:  # the same for every run of a version: built once
            specs = self._task_rows[(wf.name, wf.version)] = [
                NewTask(tid, index, task.dependencies, task.retry.max_attempts)
                for index, (tid, task) in enumerate(wf.tasks.items())
            ]
        try:
            self._create_run(execution_id, wf, name, input_json, specs, now, idempotency_key, fp)
        except KeyTaken as taken:  # submitted at once elsewhere: that run, ours rolled back
            assert idempotency_key is not None
            return keyed_result(taken.holder, idempotency_key, fp), False
        self._engine.new_run(execution_id, input_json)
        return execution_id, True

    def _create_run(
        self,
        execution_id: str,
        wf: Workflow,
        name: str | type | Workflow,
        input_json: str,
        specs: list[NewTask],
        now: float,
        idempotency_key: str | None,
        fp: str,
    ) -> None:
        with self.store.write() as tx:
            tx.create_execution(
                execution_id,
                tenant=self.tenant,
                package=wf.package,
                workflow_name=wf.name,
                workflow_version=wf.version,
                input_json=input_json,
                tasks=specs,
                now=now,
                package_id=wf.origin.package_id if wf.origin is not None else None,
                deadline_at=None if wf.deadline is None else now + wf.deadline,
            )
            if idempotency_key is not None:
                holder = tx.claim_idempotency_key(execution_id, self.tenant, idempotency_key, fp)
                if holder is not None:
                    raise KeyTaken(holder)
            tx.add_events([NewEvent(execution_id, None, "execution_started", None, None, now)])
            if current_actor() is not None and self.control_store is self.store:
                # Audited (a face started it) and the audit log is in this database: the
                # row commits with the run, one write instead of two.
                tx.add_audit(
                    audit_row(
                        "run.start",
                        execution_id,
                        "ok",
                        tenant=self.tenant,
                        detail={"workflow": name if isinstance(name, str) else wf.name},
                    )
                )
                recorded_inline()

    def execute(
        self,
        name: str | type | Workflow,
        context: ContextArg = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowResult:
        """Run workflow ``name`` and block until it ends; returns its :class:`WorkflowResult`.
        ``idempotency_key``: as for :meth:`schedule_workflow` (the same key again waits for,
        or returns, the run it made)."""
        execution_id = self.schedule_workflow(name, context, idempotency_key)
        return self.wait(execution_id, timeout)

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult:
        """Block until the run ends (or ``timeout`` seconds pass: ExecutionTimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        event = self._engine.add_waiter(execution_id)
        # Completions wake the event (in this process, or by NOTIFY). Where runs ending in
        # other processes are not notified, the checks back off from 5 ms to poll_interval.
        pause = self.settings.poll_interval if self.store.notifying else 0.005
        try:
            while True:
                status = self.store.execution_status(execution_id)
                if status is None:
                    raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
                if status in TERMINAL_EXECUTION:
                    return self.get_execution(execution_id)
                step = pause
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ExecutionTimeoutError(
                            f"workflow execution {execution_id} is still {status} after "
                            f"{timeout:g}s; wait again, or cancel it with runner.cancel()"
                        )
                    step = min(step, left)
                event.wait(step)
                pause = min(pause * 2, self.settings.poll_interval)
        finally:
            self._engine.remove_waiter(execution_id, event)

    def list_workflows(self) -> list[Workflow]:
        """The workflows this runner can execute: the default version of each registered
        packaged workflow, and those defined in this process."""
        self.registry.sync()
        return self.catalog.all()

    # ---- packages --------------------------------------------------------------------------
    @audit_package_register()
    def register_workflow(
        self, package_bytes: bytes, signature: bytes | None = None, *, replace: bool = False
    ) -> str:
        """Register a ``.cloacina`` package (its bytes) and return its package id.

        The archive is verified (format, safe paths, sizes, fingerprint, signature when
        required) and its code imported in a clean process and checked against its manifest.
        Registering identical bytes again returns the same id. A workflow name that another
        package already has is refused (:class:`~cloacina.errors.WorkflowNameConflictError`)
        unless ``replace=True``, which makes this package's workflow the one the plain name
        runs. New runs take a package's highest version (or the promoted one, see
        :meth:`promote_package`); runs in flight stay on the version they started with.
        """
        self._check_open()
        package_id = self.registry.register(package_bytes, signature, replace=replace)
        row = self.store.find_package(self.tenant, package_id=package_id)
        if row is not None:  # its declared schedules (a new version takes over the old's)
            self._declare_package_schedules(row.package)
            self._declare_package_triggers(row.package)  # and its triggers, the same way
        return package_id

    @audit_package_version("package.promote")
    def promote_package(self, name: str, version: str | None) -> None:
        """Make ``version`` of package ``name`` the default for new runs of its workflows,
        even when a higher version is registered (``None``: back to the highest version).
        Stored in the database, so every runner and worker agrees."""
        self._check_open()
        self.registry.promote(name, version)
        self._declare_package_schedules(name)
        self._declare_package_triggers(name)

    @audit_package_version("package.delete")
    def unregister_workflow(self, name: str, version: str) -> None:
        """Remove version ``version`` of package ``name`` (refused while runs of it are
        unfinished). A promotion of that version goes with it."""
        self._check_open()
        self.registry.unregister(name, version)
        self._declare_package_schedules(name)  # removed with its last version
        self._declare_package_triggers(name)

    def list_packages(self) -> list[PackageInfo]:
        """The registered packages, oldest first (``default`` marks each package's version
        that new runs take)."""
        return self.registry.list_packages()

    # ---- control ---------------------------------------------------------------------------
    @audit_run("run.cancel")
    def cancel(self, execution_id: str, *, reason: str | None = None) -> None:
        """Cancel a run: unfinished tasks are skipped, running ``async`` tasks are cancelled and
        the results of running ``def`` tasks are discarded. ``reason`` becomes the run's
        error (default: "cancelled by request"), so that whoever reads the run later learns
        why it stopped (a timeout, an interrupt). Raises :class:`InvalidStateError` if the
        run had already ended (even if it ended a moment ago, while this call waited for
        it)."""
        self._check_open()
        now = time.time()
        with self.store.write() as tx:
            # Sub-workflows: the unfinished runs below this one are cancelled with it (all
            # of them locked first, in id order with this one).
            family = lock_descendants(tx, execution_id)
            # Locked, then judged: what the run is now is what it stays until the commit.
            status = tx.lock_run_status(execution_id)
            if status is None:
                raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
            if status in TERMINAL_EXECUTION:
                raise InvalidStateError(
                    f"workflow execution {execution_id} is already {status}; nothing to cancel"
                )
            running = tx.cancel_tasks(execution_id, "execution cancelled", now)
            if not tx.finish_run(
                execution_id,
                ExecutionStatus.CANCELLED,
                now,
                final_json=None,
                error=reason or CANCELLED,
            ):  # cannot happen while the run is locked; never report a cancel that was not
                raise InvalidStateError(
                    f"workflow execution {execution_id} could not be cancelled: it ended meanwhile"
                )
            tx.add_events(
                [
                    NewEvent(
                        execution_id,
                        None,
                        "execution_cancelled",
                        None,
                        dumps_context({"running_tasks": running, "reason": reason or CANCELLED}),
                        now,
                    )
                ]
            )
            children, parent_ready = cancel_descendants(tx, execution_id, family, now)
        for eid in (execution_id, *children):
            self._engine.abandon_run(eid)
            self._engine.notify_external(eid)
        if parent_ready:  # it was a child: the task that waits for it fails ("cancelled")
            self._engine.wake()

    @audit_run("run.pause")
    def pause(self, execution_id: str) -> None:
        """Stop starting new tasks of a run; running ones finish."""
        self._set_status(
            execution_id, ExecutionStatus.PAUSED, (ExecutionStatus.RUNNING,), "execution_paused"
        )

    @audit_run("run.resume")
    def resume(self, execution_id: str) -> None:
        """Continue a paused run."""
        self._set_status(
            execution_id, ExecutionStatus.RUNNING, (ExecutionStatus.PAUSED,), "execution_resumed"
        )
        self._engine.wake()

    def _set_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        from_statuses: tuple[ExecutionStatus, ...],
        event: str,
    ) -> None:
        self._check_open()
        now = time.time()
        with self.store.write() as tx:
            family = lock_descendants(tx, execution_id)  # sub-workflows: the runs below
            current = tx.lock_run_status(execution_id)
            if current is None:
                raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
            if current not in from_statuses or not tx.set_run_status(
                execution_id, status, from_statuses, now
            ):
                raise InvalidStateError(
                    f"cannot make workflow execution {execution_id} {status}: it is {current} "
                    f"(must be {' or '.join(from_statuses)})"
                )
            tx.add_events([NewEvent(execution_id, None, event, None, None, now)])
            # Sub-workflows: the runs below this one are paused (resumed) with it.
            set_descendants_status(tx, execution_id, family, status, from_statuses[0], event, now)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the runner. With ``wait``, running tasks finish first (up to
        ``shutdown_grace``); tasks not started stay queued in the database for next time."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop_triggers(self.settings.shutdown_grace if wait else 0.0)
        self._stop_backfills()
        self._stop_schedules()
        self._unlisten()
        self._engine.shutdown(wait=wait)
        if self.execute_tasks:
            try:
                # Tasks still running past the grace period go back to the queue at once,
                # for another worker, instead of waiting for the stale-claim threshold.
                released = self.store.release_claims(self.worker_id, time.time())
                if released:
                    log.warning("handed back %d running task(s) on shutdown", released)
                self.store.worker_stopped(self.worker_id, time.time())
            except Exception as exc:  # the database may be gone; recovery will cover it
                log.warning("could not record this worker's shutdown: %s", exc)
        self.close_control_store()
        self.store.close()
