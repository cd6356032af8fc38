"""The queries every face needs about runs, workers, packages and workflows: a mixin of
:class:`~cloacina.runner.DefaultRunner` (the CLI, the HTTP API and ``cloacina.Client`` call
these methods; none of them talks to the store)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import json
import time
import tomllib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.errors import (
    ExecutionNotFoundError,
    PackageNotFoundError,
    RequestError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.model.context import loads_context
from cloacina.model.status import (
    ExecutionStatus,
    MapInstance,
    MapSummary,
    TaskResult,
    TaskStatus,
    WorkflowResult,
    to_datetime,
)
from cloacina.model.workflow import Workflow
from cloacina.service.audited import audit_prune
from cloacina.service.types import (
    ExecutionEvent,
    ExecutionPage,
    PackageDetail,
    TaskAttempt,
    TaskInfo,
    WorkerInfo,
    WorkflowInfo,
)
from cloacina.store.records import AttemptRow, EventRow, ExecutionRow, TaskRow, WorkerRow
from cloacina.store.subworkflows import SubReads

if TYPE_CHECKING:
    from cloacina.model.workflow import CatalogView
    from cloacina.registry.registry import PackageInfo, PackageRegistry
    from cloacina.store.base import Store

#: The most runs one page holds.
MAX_PAGE = 500

#: A worker recorded as running whose last heartbeat is older than this (seconds) is
#: ``silent``: it probably died without stopping (the default heartbeat is every second).
SILENT_AFTER = 10.0


def task_result(t: TaskRow) -> TaskResult:
    """A :class:`TaskResult` from the store's row of one task."""
    return TaskResult(
        task_id=t.task_id,
        status=TaskStatus(t.status),
        attempts=t.attempt,
        error=t.error,
        started_at=to_datetime(t.started_at),
        finished_at=to_datetime(t.finished_at),
        skip_reason=t.skip_reason,
        recoveries=t.recovery_count,
        traceback=t.error_traceback,
        max_attempts=t.max_attempts,
        worker_id=t.worker_id if t.status == TaskStatus.RUNNING else None,
        retry_at=to_datetime(t.retry_at) if t.status == TaskStatus.READY else None,
    )


def build_result(row: ExecutionRow, tasks: Iterable[TaskRow]) -> WorkflowResult:
    """A :class:`WorkflowResult` from the store's rows of one execution."""
    return WorkflowResult(
        execution_id=row.id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=ExecutionStatus(row.status),
        final_context=loads_context(row.final_context),
        tasks={t.task_id: task_result(t) for t in tasks},
        error=row.error,
        started_at=to_datetime(row.started_at),
        finished_at=to_datetime(row.finished_at),
        package=row.package,
        tenant=row.tenant,
        created_at=to_datetime(row.created_at),
        tasks_total=row.tasks_total,
        tasks_done=row.tasks_total - row.tasks_remaining,
        tasks_failed=row.tasks_failed,
        input_context=loads_context(row.input_context),
    )


def summary_result(row: ExecutionRow) -> WorkflowResult:
    """A run as a list shows it: no tasks, contexts or input."""
    return WorkflowResult(
        execution_id=row.id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=ExecutionStatus(row.status),
        error=row.error,
        started_at=to_datetime(row.started_at),
        finished_at=to_datetime(row.finished_at),
        package=row.package,
        tenant=row.tenant,
        created_at=to_datetime(row.created_at),
        tasks_total=row.tasks_total,
        tasks_done=row.tasks_total - row.tasks_remaining,
        tasks_failed=row.tasks_failed,
    )


def encode_cursor(row: ExecutionRow) -> str:
    """The opaque cursor of the page after ``row``: its ``(created_at, id)``."""
    raw = f"{row.created_at!r}:{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(created_at, id)`` from a cursor :func:`encode_cursor` made (RequestError if not)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, execution_id = raw.partition(":")
        if not execution_id:
            raise ValueError("no id")
        return float(created), execution_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestError(
            f"invalid cursor {cursor!r}: pass the next_cursor of the previous page as it is"
        ) from None


def epoch(value: float | datetime | None) -> float | None:
    """Epoch seconds from a datetime (naive: local time) or a number."""
    if isinstance(value, datetime):
        return value.timestamp()
    return value


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise RequestError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {limit!r}")
    return limit


def check_status(status: str | None) -> str | None:
    if status is None:
        return None
    try:
        return ExecutionStatus(status).value
    except ValueError:
        known = ", ".join(s.value for s in ExecutionStatus)
        raise RequestError(f"unknown execution status {status!r}; use one of {known}") from None


def event_of(row: EventRow) -> ExecutionEvent:
    detail: dict[str, Any] = {}
    if row.detail:
        try:
            decoded = json.loads(row.detail)
        except ValueError:
            decoded = row.detail
        detail = decoded if isinstance(decoded, dict) else {"detail": decoded}
    at = to_datetime(row.created_at)
    assert at is not None
    return ExecutionEvent(
        seq=row.id,
        execution_id=row.execution_id,
        type=row.event,
        at=at,
        task_id=row.task_id,
        attempt=row.attempt,
        detail=detail,
    )


def attempt_of(row: AttemptRow) -> TaskAttempt:
    return TaskAttempt(
        execution_id=row.execution_id,
        task_id=row.task_id,
        attempt=row.attempt,
        outcome=row.outcome,
        recovery=row.recovery,
        worker_id=row.worker_id,
        started_at=to_datetime(row.started_at),
        finished_at=to_datetime(row.finished_at),
        error=row.error,
        traceback=row.error_traceback,
        skip_reason=row.skip_reason,
    )


def worker_state(row: WorkerRow, now: float) -> str:
    """``running``, ``stopped``, or ``silent`` for a running worker not heard of lately."""
    if row.status == "running" and now - row.last_heartbeat > SILENT_AFTER:
        return "silent"
    return row.status


def worker_of(row: WorkerRow, now: float) -> WorkerInfo:
    started, heartbeat = to_datetime(row.started_at), to_datetime(row.last_heartbeat)
    assert started is not None and heartbeat is not None
    return WorkerInfo(
        id=row.id,
        host=row.host,
        pid=row.pid,
        state=worker_state(row, now),
        status=row.status,
        started_at=started,
        last_heartbeat_at=heartbeat,
        running_tasks=row.running_tasks,
        max_tasks=row.max_tasks,
        version=row.version,
        stopped_at=to_datetime(row.stopped_at),
    )


def workflow_info(wf: Workflow) -> WorkflowInfo:
    return WorkflowInfo(
        name=wf.name,
        version=wf.version,
        package=wf.package,
        description=wf.description,
        tasks=[TaskInfo(tid, list(task.dependencies)) for tid, task in wf.tasks.items()],
    )


class ExecutionService:
    """Reading runs (paged, filtered), their attempts and events; workers; packages and
    workflows as the faces show them; retention. Mixed into ``DefaultRunner``."""

    if TYPE_CHECKING:
        store: Store
        registry: PackageRegistry
        catalog: CatalogView
        tenant: str

        def _check_open(self) -> None: ...

        def resolve(self, name: str | type | Workflow) -> Workflow: ...

        def list_workflows(self) -> list[Workflow]: ...

        def list_packages(self) -> list[PackageInfo]: ...

    # ---- runs --------------------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> WorkflowResult:
        """The current state of a run (finished or not), with its tasks and contexts."""
        row = self.store.get_execution(execution_id)
        if row is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        return self._result(row)

    def _result(self, row: ExecutionRow, tasks: list[TaskRow] | None = None) -> WorkflowResult:
        """A run with its tasks (``tasks``: its rows, when already read); a mapped task's
        instances as counts."""
        if tasks is None:
            tasks = self.store.get_tasks(row.id)
        result = self._with_family(build_result(row, tasks))
        if any(t.map_total is not None for t in tasks):
            result = dataclasses.replace(result, tasks=self._with_instances(row.id, tasks))
        return result

    def _with_family(self, result: WorkflowResult) -> WorkflowResult:
        """The run with its parent and its children (sub-workflows), one read."""
        if isinstance(self.store, SubReads):
            family = self.store.run_family(result.execution_id)
            if family.children or family.parent_execution_id is not None:
                return dataclasses.replace(
                    result,
                    children=list(family.children),
                    parent_execution_id=family.parent_execution_id,
                    parent_task_id=family.parent_task_id,
                )
        return result

    def _with_instances(self, execution_id: str, rows: list[TaskRow]) -> dict[str, TaskResult]:
        """The tasks' results, a mapped task's instances as counts (a grouped read per
        mapped task), never as 100,000 results."""
        results = {t.task_id: task_result(t) for t in rows}
        mapped = [(t.task_id, t.id, t.map_total) for t in rows if t.map_total is not None]
        for task_id, counts in self.store.map_counts(execution_id, mapped).items():
            results[task_id] = dataclasses.replace(
                results[task_id],
                instances=MapSummary(
                    counts.total, counts.by_status, counts.failed_indexes, counts.failed_more
                ),
            )
        return results

    def get_map_instances(
        self,
        execution_id: str,
        task_id: str,
        *,
        after: int = -1,
        limit: int = 100,
        status: str | TaskStatus | None = None,
    ) -> list[MapInstance]:
        """A page of a mapped task's instances in index order: those after index ``after``
        (-1: from the first), at most ``limit`` (1 to 500), only in ``status`` when given.
        Each instance's own attempts and logs are read with its ``task_id``
        (``"process[7]"``). An unknown run or task is an error; a task that is not mapped
        (or whose instances are not made yet) has none."""
        limit = check_limit(limit)
        try:
            wanted = None if status is None else TaskStatus(status).value
        except ValueError:
            known = ", ".join(s.value for s in TaskStatus)
            raise RequestError(f"unknown task status {status!r} (one of: {known})") from None
        rows = self.store.map_instances(
            execution_id, task_id, after_index=after, limit=limit, status=wanted
        )
        if not rows and after < 0:  # nothing at all: say why, if it is a mistake
            if self.store.get_execution(execution_id) is None:
                raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
            if not self.store.get_tasks(execution_id, task_id):
                raise TaskNotFoundError(f"run {execution_id} has no task {task_id!r}")
        return [
            MapInstance(
                index=r.index,
                task_id=r.task_id,
                status=r.status,
                attempts=r.attempt,
                max_attempts=r.max_attempts,
                error=r.error,
                worker_id=r.worker_id if r.status == TaskStatus.RUNNING else None,
                started_at=to_datetime(r.started_at),
                finished_at=to_datetime(r.finished_at),
            )
            for r in rows
        ]

    def get_execution_summary(self, execution_id: str) -> WorkflowResult:
        """A run as a list shows it (status, times, task counts), its input, its parent and
        its children, without reading its tasks: cheap whatever the run's size."""
        row = self.store.get_execution(execution_id)
        if row is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        summary = summary_result(row)
        return self._with_family(
            dataclasses.replace(summary, input_context=loads_context(row.input_context))
        )

    def get_execution_status(self, execution_id: str) -> ExecutionStatus:
        """A run's status alone (one cheap read)."""
        status = self.store.execution_status(execution_id)
        if status is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        return status

    def list_executions_page(
        self,
        *,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """One page of runs, newest first (by creation, then id), as summaries (no tasks or
        contexts). Filters: ``status``; ``workflow_name``; created at or after ``since`` and
        before ``until`` (epoch seconds or datetimes); ``q``, text in the run's id or error
        (case-insensitive). ``limit`` is 1 to 500; ``cursor`` is the ``next_cursor`` of the
        page before. Runs added meanwhile never shift a later page (they sort before it)."""
        limit = check_limit(limit)
        before = decode_cursor(cursor) if cursor else None
        rows = self.store.list_executions(
            limit=limit + 1,
            status=check_status(status),
            workflow_name=workflow_name or None,
            since=epoch(since),
            until=epoch(until),
            q=q or None,
            before=before,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return ExecutionPage(
            items=[summary_result(r) for r in rows],
            next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        )

    def count_executions(
        self,
        *,
        workflow_name: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        q: str | None = None,
    ) -> dict[str, int]:
        """How many runs there are of each status (every status named, 0 included), under
        the filters of :meth:`list_executions_page`: one grouped read."""
        found = self.store.count_executions_by_status(
            workflow_name=workflow_name or None, since=epoch(since), until=epoch(until), q=q or None
        )
        return {s.value: found.get(s.value, 0) for s in ExecutionStatus}

    def list_executions(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        q: str | None = None,
        cursor: str | None = None,
    ) -> list[WorkflowResult]:
        """Recent runs, newest first, without per-task detail: the items of
        :meth:`list_executions_page` (the same filters)."""
        return self.list_executions_page(
            status=status,
            workflow_name=workflow_name,
            since=since,
            until=until,
            q=q,
            limit=limit,
            cursor=cursor,
        ).items

    def find_execution(self, id_or_prefix: str) -> WorkflowResult:
        """The run with this id, or the only one whose id starts with it (the short ids a
        list shows). :class:`ExecutionNotFoundError` for none, :class:`RequestError` for a
        prefix that several runs share (it names some)."""
        ident = id_or_prefix.strip()
        if not ident:
            raise RequestError("give an execution id (or a unique prefix of one)")
        row = self.store.get_execution(ident)
        if row is None:
            matches = self.store.find_executions(ident, limit=6)
            if not matches:
                raise ExecutionNotFoundError(
                    f"no workflow execution with id or id prefix {ident!r}; "
                    "list them with: cloacina executions list"
                )
            if len(matches) > 1:
                shown = ", ".join(f"{r.id} ({r.workflow_name})" for r in matches[:5])
                more = " and more" if len(matches) > 5 else ""
                raise RequestError(
                    f"execution id prefix {ident!r} is ambiguous: it matches {shown}{more}; "
                    "give more characters"
                )
            row = matches[0]
        return self._result(row)

    def get_run_graph(self, execution_id: str, task_id: str | None = None) -> dict[str, list[str]]:
        """Each task of the run (``task_id`` alone, when given) with its dependencies, in
        declared order: the graph the run was created with (stored with it), not its
        workflow's current definition. Runs from before graphs were stored take it from the
        workflow's code when it is known here (else their tasks come without edges)."""
        rows = self.store.get_tasks(execution_id, task_id)
        if not rows and self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        return self._graph_of(execution_id, rows)

    def get_run_view(
        self, execution_id: str
    ) -> tuple[WorkflowResult, dict[str, list[str]], list[TaskAttempt]]:
        """A run, its graph and its attempts together (what a run's page draws), its task
        rows read once rather than once for each of :meth:`get_execution`,
        :meth:`get_run_graph` and :meth:`get_attempts`."""
        row = self.store.get_execution(execution_id)
        if row is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        tasks = self.store.get_tasks(execution_id)
        return (
            self._result(row, tasks),
            self._graph_of(execution_id, tasks),
            self._attempts_of(execution_id, tasks, None),
        )

    def _graph_of(self, execution_id: str, rows: list[TaskRow]) -> dict[str, list[str]]:
        """The dependencies of the tasks ``rows`` (see :meth:`get_run_graph`)."""
        if all(row.dependencies is not None for row in rows):
            return {row.task_id: list(row.dependencies or ()) for row in rows}
        run = self.store.get_execution(execution_id)
        wf = None if run is None else self.catalog.find(run.workflow_name, run.workflow_version)
        return {
            row.task_id: list(
                row.dependencies
                if row.dependencies is not None
                else (wf.tasks[row.task_id].dependencies if wf and row.task_id in wf.tasks else ())
            )
            for row in rows
        }

    def get_task(self, execution_id: str, task_id: str) -> TaskResult:
        """One task of a run (one read, whatever the run's size)."""
        if self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        rows = self.store.get_tasks(execution_id, task_id)
        if not rows:
            raise TaskNotFoundError(f"run {execution_id} has no task {task_id!r}")
        if rows[0].map_total is not None:
            return self._with_instances(execution_id, rows)[task_id]
        return task_result(rows[0])

    def get_attempts(self, execution_id: str, task_id: str | None = None) -> list[TaskAttempt]:
        """Every attempt of every task of the run (of ``task_id`` only, when given), in the
        order they ended; attempts under way now come last (``outcome`` ``running``)."""
        if self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        return self._attempts_of(execution_id, self.store.get_tasks(execution_id, task_id), task_id)

    def _attempts_of(
        self, execution_id: str, rows: list[TaskRow], task_id: str | None
    ) -> list[TaskAttempt]:
        """The finished attempts (of ``task_id``, when given), then those under way in the
        task ``rows``."""
        attempts = [attempt_of(a) for a in self.store.get_attempts(execution_id, task_id)]
        for task in rows:
            if task.status == TaskStatus.RUNNING and task.attempt > 0:
                attempts.append(
                    TaskAttempt(
                        execution_id=execution_id,
                        task_id=task.task_id,
                        attempt=task.attempt,
                        outcome="running",
                        recovery=task.recovery_count,
                        worker_id=task.worker_id,
                        started_at=to_datetime(task.started_at),
                    )
                )
        return attempts

    def get_task_output(self, execution_id: str, task_id: str) -> dict[str, Any] | None:
        """What a task of the run returned into the context (``None`` when it has not
        completed or returned nothing)."""
        found = self.store.get_outputs(execution_id, [task_id]).get(task_id)
        return None if found is None else loads_context(found)

    def get_instance_result(self, execution_id: str, instance_id: str) -> Any:
        """What one instance of a mapped task returned (``"process[7]"``): any JSON value,
        ``None`` when it has not completed (or returned ``None``)."""
        found = self.store.get_outputs(execution_id, [instance_id]).get(instance_id)
        return None if found is None else json.loads(found)

    def get_events(
        self, execution_id: str, after: int = 0, limit: int | None = None
    ) -> list[ExecutionEvent]:
        """The run's events after sequence number ``after``, oldest first (at most ``limit``).
        An unknown run is :class:`ExecutionNotFoundError` (a run with no events yet is
        ``[]``)."""
        rows = self.store.get_events(execution_id, after_id=after)
        if not rows and self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        if limit is not None:
            rows = rows[: max(0, limit)]
        return [event_of(r) for r in rows]

    @audit_prune()
    def prune_executions(self, older_than: float) -> int:
        """Remove finished runs (completed, failed, cancelled) that ended more than
        ``older_than`` seconds ago, with their tasks, outputs and events; how many."""
        self._check_open()
        return self.store.prune_executions(time.time() - older_than)

    def count_prunable(self, older_than: float) -> int:
        """How many runs :meth:`prune_executions` would remove now."""
        return self.store.count_finished_before(time.time() - older_than)

    # ---- workers -----------------------------------------------------------------------------
    def list_workers(self, include_stopped: bool = False) -> list[WorkerInfo]:
        """The workers of this tenant, oldest first (stopped ones too with
        ``include_stopped``); ``running_tasks`` counts the tasks each holds now."""
        rows = self.store.list_workers(include_stopped=include_stopped)
        now = time.time()
        return [worker_of(r, now) for r in rows]

    def worker_tasks(self) -> dict[str, list[tuple[str, str]]]:
        """The running tasks each worker of this tenant holds now, by worker id: a list of
        ``(execution_id, task_id)`` (workers holding none are left out)."""
        held: dict[str, list[tuple[str, str]]] = {}
        for worker_id, execution_id, task_id in self.store.running_tasks_by_worker():
            held.setdefault(worker_id, []).append((execution_id, task_id))
        return held

    # ---- packages and workflows --------------------------------------------------------------
    def get_package(self, name: str, version: str) -> PackageDetail:
        """One registered package version with its manifest (PackageNotFoundError if not)."""
        for info in self.list_packages():
            if info.package == name and info.version == version:
                row = self.store.find_package(self.tenant, package_id=info.id)
                if row is None:
                    break  # unregistered meanwhile
                registered = to_datetime(info.registered_at)
                assert registered is not None
                return PackageDetail(
                    id=info.id,
                    package=info.package,
                    version=info.version,
                    sha256=info.sha256,
                    workflows=list(info.workflows),
                    signer=info.signer,
                    registered_at=registered,
                    default=info.default,
                    promoted=info.promoted,
                    manifest=tomllib.loads(row.manifest),
                )
        raise PackageNotFoundError(
            f"no package {name} {version} is registered; list them with `cloacina package list`"
        )

    def get_package_archive(self, name: str, version: str) -> bytes:
        """The ``.cloacina`` archive of a registered package version, as registered."""
        row = self.store.find_package(self.tenant, name=name, version=version)
        found = self.store.get_package_archive(row.id) if row is not None else None
        if found is None:
            raise PackageNotFoundError(
                f"no package {name} {version} is registered; list them with `cloacina package list`"
            )
        return found[0]

    def describe_workflows(self) -> list[WorkflowInfo]:
        """The workflows this runner can execute (see ``list_workflows``), with their graph."""
        return [workflow_info(wf) for wf in self.list_workflows()]

    def describe_workflow(self, name: str) -> WorkflowInfo:
        """One workflow by name (``package::workflow@version`` forms too), with its graph;
        :class:`WorkflowNotFoundError` names the nearest known name."""
        try:
            return workflow_info(self.resolve(name))
        except WorkflowNotFoundError:
            names = sorted({wf.name for wf in self.list_workflows()})
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            known = ", ".join(names) if names else "none"
            raise WorkflowNotFoundError(
                f"no workflow named {name!r}{hint} (known: {known})"
            ) from None


__all__ = ["MAX_PAGE", "SILENT_AFTER", "ExecutionService", "build_result", "worker_state"]
