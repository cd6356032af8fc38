"""Run control (DESIGN §11): surgical reruns and idempotency keys, a mixin of
:class:`~cloacina.runner.DefaultRunner`.

A **rerun** resets chosen tasks of a run that has ended (and, by default, their dependents,
transitively) back to ``pending`` in one transaction: completed upstream tasks keep their
outputs and are not run again, every earlier attempt stays on record and attempt numbers
continue, the skip cascade is undone for the tasks that now run, and the run is ``running``
again when :meth:`RunControlService.rerun` returns. A worker still finishing an old attempt
holds a claim token the reset cleared: its completion is fenced out.

An **idempotency key** names one run per tenant: a submission with a key some run holds
returns that run's id (or raises :class:`~cloacina.errors.IdempotencyConflictError` when it
was given another workflow or context). See :mod:`cloacina.store.run_control` for how the
database settles two submissions of one key at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cloacina.engine.alerts import outbox_items
from cloacina.engine.scheduler import Effects, RunCache, Scheduler
from cloacina.errors import (
    ExecutionNotFoundError,
    IdempotencyConflictError,
    InvalidStateError,
    RequestError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.model.context import Context, as_context_dict, dumps_context
from cloacina.model.status import TERMINAL_EXECUTION
from cloacina.model.workflow import Workflow
from cloacina.service.audit import Described, audited, current_actor
from cloacina.store.records import DependentState, NewEvent
from cloacina.store.run_control import RERUN_EVENT, GraphTask, KeyedRun
from cloacina.store.subworkflows import CHILD_KEY_PREFIX

if TYPE_CHECKING:
    from cloacina.engine.engine import Engine
    from cloacina.model.workflow import CatalogView
    from cloacina.registry.registry import PackageRegistry
    from cloacina.store import Store

#: Longest idempotency key (``workflow_executions.idempotency_key``).
IDEMPOTENCY_KEY_MAX = 255
#: The skip reason of the tasks a cancel stopped (see ``cancel_tasks``).
CANCELLED_SKIP = "execution cancelled"
#: How many runs one :meth:`RunControlService.rerun_failed` reruns at most.
RERUN_FAILED_MAX = 10_000


class KeyTaken(Exception):
    """Raised inside a submission's transaction (rolling it back) when another run holds its
    idempotency key."""

    def __init__(self, holder: KeyedRun) -> None:
        super().__init__(holder.execution_id)
        self.holder = holder


def check_idempotency_key(key: str) -> str:
    """The key, or :class:`RequestError` for one that is empty or too long."""
    if not isinstance(key, str) or not key:
        raise RequestError("an idempotency key must be a non-empty string", field="idempotency_key")
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise RequestError(
            f"an idempotency key is at most {IDEMPOTENCY_KEY_MAX} characters; this one has "
            f"{len(key)} (use a shorter key, e.g. a hash of a longer one)",
            field="idempotency_key",
        )
    if key.startswith(CHILD_KEY_PREFIX):  # the engine's keys of sub-workflows' child runs
        raise RequestError(
            f"idempotency keys starting with {CHILD_KEY_PREFIX!r} are the engine's own "
            "(sub-workflows' child runs): choose another key",
            field="idempotency_key",
        )
    return key


def fingerprint(workflow_name: str, context: Mapping[str, Any]) -> str:
    """What a keyed submission was given (its workflow and context), as a SHA-256."""
    body = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{workflow_name}\n{body}".encode()).hexdigest()


def keyed_result(holder: KeyedRun, key: str, fp: str) -> str:
    """The holder's id when it was given the same workflow and context, else the conflict."""
    if holder.fingerprint != fp:
        raise IdempotencyConflictError(
            f"idempotency key {key!r} already names workflow execution {holder.execution_id}, "
            "submitted with another workflow or context; use a new key for a new request"
        )
    return holder.execution_id


def _rerun_described(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    detail: dict[str, Any] = {}
    if args.get("tasks"):
        detail["tasks"] = list(args["tasks"])
    if args.get("downstream") is False:
        detail["downstream"] = False
    if args.get("context"):
        detail["context"] = True  # what it was stays in the run's event, not the audit log
    if args.get("version"):
        detail["version"] = args["version"]
    return str(args.get("execution_id", "")), (detail or None)


def _since(since: float | datetime | timedelta | None, now: float) -> float | None:
    if since is None:
        return None
    if isinstance(since, timedelta):
        return now - since.total_seconds()
    if isinstance(since, datetime):
        return since.timestamp()
    return float(since)


def rerun_choice(
    graph: Sequence[GraphTask], tasks: Iterable[str] | None, downstream: bool
) -> list[str]:
    """The tasks a rerun resets, in the run's task order: ``tasks`` (None: every failed
    task and every task a cancel stopped) and, with ``downstream``, their dependents,
    transitively. Unknown ids are refused."""
    known = {t.task_id for t in graph}
    if tasks is None:
        chosen = {
            t.task_id
            for t in graph
            if t.status == "failed" or (t.status == "skipped" and t.skip_reason == CANCELLED_SKIP)
        }
    else:
        chosen = set(tasks)
        unknown = sorted(chosen - known)
        if unknown:
            raise TaskNotFoundError(
                f"the run has no task(s) {', '.join(map(repr, unknown))}; its tasks are "
                f"{', '.join(t.task_id for t in graph)}"
            )
    if downstream and chosen:
        dependents: dict[str, list[str]] = {}
        for t in graph:
            for dep in t.dependencies:
                dependents.setdefault(dep, []).append(t.task_id)
        stack = list(chosen)
        while stack:
            for child in dependents.get(stack.pop(), ()):
                if child not in chosen:
                    chosen.add(child)
                    stack.append(child)
    return [t.task_id for t in graph if t.task_id in chosen]


class RunControlService:
    """``rerun``, ``rerun_failed`` and the idempotency checks of submissions."""

    store: Store
    tenant: str
    catalog: CatalogView
    registry: PackageRegistry
    _engine: Engine
    _now: Callable[[], float]

    def _check_open(self) -> None: ...

    # ---- idempotency ---------------------------------------------------------------------------
    def _find_keyed(self, key: str, workflow_name: str, context: Mapping[str, Any]) -> str | None:
        """The run an earlier submission with this key made (None: none yet); raises for
        a long key or another body."""
        fp = fingerprint(workflow_name, context)
        holder = self.store.find_keyed_run(self.tenant, check_idempotency_key(key))
        return None if holder is None else keyed_result(holder, key, fp)

    # ---- reruns ----------------------------------------------------------------------------------
    @audited("run.rerun", _rerun_described)
    def rerun(
        self,
        execution_id: str,
        tasks: Iterable[str] | None = None,
        *,
        downstream: bool = True,
        context: Context | Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> None:
        """Run again tasks of a run that has ended: ``tasks`` (None: every failed task, and
        those a cancel stopped) and, with ``downstream``, their dependents, transitively.
        Completed upstream tasks keep their outputs and do not run again; attempt numbers
        continue. ``context`` is deep-merged over the input of the rerun's first tasks;
        ``version`` moves the run to another registered version of its workflow (one with
        the same tasks and dependencies). Returns once the run is running again, so a
        ``wait()`` after it waits for the rerun. Raises :class:`ExecutionNotFoundError`,
        :class:`InvalidStateError` (the run has not ended, or nothing to rerun),
        :class:`TaskNotFoundError` or :class:`WorkflowNotFoundError` (no such version), with
        nothing changed."""
        self._check_open()
        if isinstance(tasks, str):
            tasks = [tasks]
        patch = as_context_dict(context) if context is not None else {}
        dumps_context(patch)  # refused now if it cannot be stored
        row = self.store.get_execution(execution_id)
        if row is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        current = self._workflow_for(row.workflow_name, row.workflow_version)
        target = None if version is None else self._target_version(row.workflow_name, version)
        now = self._now()
        actor = current_actor()
        with self.store.write() as tx:
            status = tx.lock_run_status(execution_id)
            if status is None:
                raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
            if status not in TERMINAL_EXECUTION:
                raise InvalidStateError(
                    f"workflow execution {execution_id} is {status}; only a run that has ended "
                    "can be rerun (wait for it, or cancel it first)"
                )
            graph = tx.run_graph(execution_id)
            chosen = rerun_choice(graph, tasks, downstream)
            if not chosen:
                raise InvalidStateError(
                    f"workflow execution {execution_id} ({status}) has no failed or cancelled "
                    "task to rerun; name the tasks to rerun with tasks=[...] (--task)"
                )
            wf = current
            if target is not None and target.version != row.workflow_version:
                _check_same_graph(target, graph)
                tx.switch_version(
                    execution_id,
                    target.version,
                    target.origin.package_id if target.origin is not None else None,
                )
                wf = target
            if wf is not None and any(t not in wf.tasks for t in chosen):
                # Rows that are not tasks of the workflow: a mapped task's instances.
                odd = [t for t in chosen if t not in wf.tasks][:5]
                raise InvalidStateError(
                    f"workflow execution {execution_id} has task rows {', '.join(odd)} that "
                    f"are not tasks of workflow {wf.name!r} (a mapped task's instances); such "
                    "runs cannot be rerun yet: start a new run"
                )
            chosen_set = set(chosen)
            deps_of = {t.task_id: t.dependencies for t in graph}
            first = [t for t in chosen if not chosen_set.intersection(deps_of[t])]
            detail: dict[str, Any] = {
                "tasks": chosen,
                "first": first,
                "by": actor.name if actor is not None else None,
                "downstream": downstream,
                # Each task's attempts so far (a skip without a start counts as one, see
                # record_skipped): retries count from there.
                "attempts": {
                    t.task_id: max(t.attempt, 1 if t.status == "skipped" else 0)
                    for t in graph
                    if t.task_id in chosen_set
                },
            }
            if target is not None:
                detail["version"] = target.version
                detail["from_version"] = row.workflow_version
            if patch:
                detail["context"] = patch
            tx.add_events(
                [NewEvent(execution_id, None, RERUN_EVENT, None, dumps_context(detail), now)]
            )
            never_ran = [
                t.task_id
                for t in graph
                if t.task_id in chosen_set and t.status == "skipped" and not t.attempt
            ]
            if never_ran:
                tx.record_skipped(execution_id, never_ran, now)
            states = tx.reset_tasks(execution_id, chosen, now)
            fx = Effects()
            self._judge(tx, wf, execution_id, states, now, fx)
            if fx.ready:
                tx.mark_ready([r.row_id for r in fx.ready])
            if fx.alerts:
                tx.enqueue_alerts(outbox_items(fx.alerts), now)
            tx.add_events(fx.events)
        self._engine.forget_run(execution_id)
        if fx.finished_runs:  # everything it reset was skipped at once
            self._engine.notify_external(execution_id)

    def rerun_failed(
        self,
        workflow: str | None = None,
        since: float | datetime | timedelta | None = None,
    ) -> list[str]:
        """Rerun the failed tasks (and their dependents) of every failed run of
        ``workflow`` (None: of any workflow) created since ``since`` (epoch seconds, a
        datetime, or a timedelta meaning that long ago), oldest first; the ids rerun. A run
        that another caller reran meanwhile is left out."""
        self._check_open()
        name = None
        if workflow is not None:
            name = workflow.split("::")[-1].split("@")[0]
        ids = self.store.finished_run_ids(
            ["failed"],
            workflow_name=name,
            since=_since(since, time.time()),
            limit=RERUN_FAILED_MAX,
        )
        done: list[str] = []
        for eid in ids:
            try:
                self.rerun(eid)
            except (InvalidStateError, ExecutionNotFoundError):
                continue  # rerun (or removed) by someone else meanwhile
            done.append(eid)
        return done

    async def rerun_async(
        self,
        execution_id: str,
        tasks: Iterable[str] | None = None,
        *,
        downstream: bool = True,
        context: Context | Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> None:
        import asyncio

        await asyncio.to_thread(
            lambda: self.rerun(
                execution_id, tasks, downstream=downstream, context=context, version=version
            )
        )

    # ---- helpers ---------------------------------------------------------------------------------
    def _workflow_for(self, name: str, version: str) -> Workflow | None:
        wf = self.catalog.find(name, version)
        if wf is None:
            self.registry.sync()
            wf = self.catalog.find(name, version)
        return wf

    def _target_version(self, name: str, version: str) -> Workflow:
        """The version a rerun moves to: a workflow version (or a unique prefix of one of at
        least 6 characters) this process knows, or a registered package's version."""
        self.registry.sync()
        found = self.catalog.find(name, version)
        if found is None and len(version) >= 6:
            matches = [
                wf
                for wf in self.catalog.all_versions()
                if wf.name == name and wf.version.startswith(version)
            ]
            if len(matches) == 1:
                found = matches[0]
        if found is None:
            here = self.catalog.find(name)
            if here is not None and here.origin is not None:
                try:
                    from cloacina.registry.registry import WorkflowRef

                    found = self.registry.lookup(
                        WorkflowRef.parse(f"{here.package}::{name}@{version}")
                    )
                except Exception:
                    found = None
        if found is None:
            known = sorted(
                {wf.version[:12] for wf in self.catalog.all_versions() if wf.name == name}
            )
            raise WorkflowNotFoundError(
                f"workflow {name!r} has no registered version {version!r}; known versions: "
                f"{', '.join(known) or 'none'}"
            )
        return found

    def _judge(
        self,
        tx: Any,
        wf: Workflow | None,
        execution_id: str,
        states: list[DependentState],
        now: float,
        fx: Effects,
    ) -> None:
        """Judge the reset tasks whose dependencies are settled (a scheduler of its own: the
        engine's cache may hold the outputs the rerun replaces)."""
        if wf is not None:
            Scheduler(RunCache(), tenant=self.tenant).judge(tx, wf, execution_id, states, now, fx)
            return
        # This process does not hold the workflow's code (a CLI on a database of embedded
        # workflows): tasks whose dependencies all completed are ready (what every status
        # rule but one_failed says; context conditions are judged when claimed).
        settled = [st for st in states if st.deps_remaining == 0]
        unclear = [st.task_id for st in settled if st.deps_failed or st.deps_skipped]
        if unclear:
            raise InvalidStateError(
                f"task(s) {', '.join(unclear)} have failed or skipped dependencies and this "
                "process does not hold the workflow's code to judge their trigger rules; "
                "rerun from a process that imports it, or rerun those dependencies too"
            )
        tx.mark_ready([st.row_id for st in settled])


def _check_same_graph(target: Workflow, graph: Sequence[GraphTask]) -> None:
    """A run moves only to a version with the same tasks and dependencies (its stored graph
    and counters stay right); else :class:`InvalidStateError` naming the difference."""
    have = {t.task_id: tuple(t.dependencies) for t in graph}
    want = {tid: tuple(task.dependencies) for tid, task in target.tasks.items()}
    missing = sorted(set(have) - set(want))
    if missing:
        raise InvalidStateError(
            f"version {target.version[:12]} of workflow {target.name!r} lacks task(s) "
            f"{', '.join(missing)} of this run; rerun on a version that has them"
        )
    extra = sorted(set(want) - set(have))
    changed = sorted(t for t in have if set(have[t]) != set(want[t]))
    if extra or changed:
        what = (f"adds {', '.join(extra)}" if extra else "") + (
            f"{'; ' if extra else ''}changes the dependencies of {', '.join(changed)}"
            if changed
            else ""
        )
        raise InvalidStateError(
            f"version {target.version[:12]} of workflow {target.name!r} {what}; a run moves "
            "only to a version with the same tasks and dependencies (start a new run instead)"
        )
