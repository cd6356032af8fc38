"""Dynamic fan-out (DESIGN §11, ``map_over``): a mapped task's instances.

When a mapped task is claimed, its input's list becomes instance rows instead of a body
to run, a batch per engine cycle under the task's claim (released once the last is made):
the first ``max_parallel`` ready, the rest opened as instances settle (under the run's
lock, so the limit holds across workers). Instances are claimed, run, retried, timed out
and recovered like any task (``task_id`` ``"process[7]"``, its body the mapped task's,
``context["item"]`` its item, ``current_task().map_index`` its index); their outcomes
come here instead of the run's counters. When the last one settles, the mapped task
completes with its input plus ``{task_id: [each instance's return value, in index
order]}`` (gathered a page at a time), or fails, and only then do its dependents and its
run hear of it.

An instance's context is the mapped task's input *without* the mapped list (a copy of a
100,000-item list per instance would make the map quadratic), plus ``item``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from cloacina.engine.executor import COMPLETED, FAILED, Job, Outcome, build_context, condition_skip
from cloacina.errors import CloacinaError, TaskError
from cloacina.model.context import dumps_context
from cloacina.model.status import TaskStatus
from cloacina.model.task import Task
from cloacina.model.workflow import Workflow
from cloacina.store.base import WriteTx
from cloacina.store.fanout import FAILED_INDEXES_SHOWN, MapWrites
from cloacina.store.records import Claim, Completion, NewEvent, map_base_id
from cloacina.taskinfo import TaskInfo

if TYPE_CHECKING:
    from cloacina.engine.scheduler import Effects, RunCache, Scheduler

#: The cache key of a mapped task's input without its list (what each instance starts from).
BASE_KEY = "\x00map:"


def map_tx(tx: WriteTx) -> MapWrites:
    """The transaction's fan-out statements (every SQL store has them)."""
    if not isinstance(tx, MapWrites):
        raise CloacinaError(
            f"{type(tx).__name__} does not run mapped tasks (map_over): use a SQLite or "
            "PostgreSQL store"
        )
    return tx


def is_map_parent(job: Job) -> bool:
    """A claim of a mapped task itself (not of one of its instances)."""
    return job.task.map_over is not None and job.claim.map_index is None


def item_input(item_json: str | None) -> str:
    """The part of an instance's input that holds its item."""
    return '{"item":' + (item_json or "null") + "}"


def item_json(item: object) -> str:
    """A list element as stored with its instance (JSON)."""
    return dumps_context({"_": item})[5:-1]  # '{"_":' ... '}'


class JsonItems(Sequence[str]):
    """A list's elements as JSON, each made when read (a batch of instances at a time)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [item_json(item) for item in self._items[index]]
        return item_json(self._items[index])


@dataclass(slots=True)
class Expansion:
    """A mapped task whose instances are being made, a batch per engine cycle (its claim
    held until the last is made: a worker that dies meanwhile leaves it to be taken back,
    and whoever claims it next goes on from the instances already made)."""

    claim: Claim
    task: Task
    items: JsonItems  # every item, made JSON a batch at a time


class Fanout:
    """Expands mapped tasks and settles their instances, inside the engine's transaction."""

    def __init__(self, scheduler: Scheduler, cache: RunCache, max_items: int) -> None:
        self.scheduler = scheduler
        self.cache = cache
        self.max_items = max_items

    # ---- a mapped task was claimed: its instances ------------------------------------------
    def expand(
        self, tx: WriteTx, wf: Workflow, jobs: Sequence[Job], now: float, fx: Effects
    ) -> list[Expansion]:
        """Start the maps of claimed mapped tasks (their instances are made a batch at a
        time: see :meth:`MapClaims._grow_maps`); a bad input or an empty list ends the task
        at once."""
        mtx = map_tx(tx)
        started: list[Expansion] = []
        ended: list[tuple[Workflow, Outcome]] = []
        for job in jobs:
            claim, task = job.claim, job.task
            key = task.map_over
            assert key is not None
            ctx = build_context(job.inputs, task)
            skipped = condition_skip(job, ctx)
            if skipped is not None:
                ended.append((wf, skipped))
                continue
            data = ctx._data
            problem = None
            items = data.get(key)
            if key not in data:
                known = ", ".join(repr(k) for k in list(data)[:10]) or "none"
                problem = f"map_over={key!r} names no key of its input context (its keys: {known})"
            elif not isinstance(items, list):
                problem = (
                    f"map_over={key!r}: context[{key!r}] is {type(items).__name__}, not a list"
                )
            elif len(items) > self.max_items:
                problem = (
                    f"map_over={key!r}: {len(items)} items is over the limit of "
                    f"{self.max_items} (setting max_map_items)"
                )
            if problem is not None:
                err = TaskError(f"task {task.id!r}: {problem}", retryable=False)
                ended.append((wf, Outcome(claim, FAILED, error=str(err), exc=err, finished_at=now)))
                continue
            assert isinstance(items, list)
            if not items:  # nothing to map: [] at once
                output = dumps_context({**data, task.id: []})
                ended.append((wf, Outcome(claim, COMPLETED, output_json=output, finished_at=now)))
                continue
            base = {k: v for k, v in data.items() if k != key}
            base_json = dumps_context(base)
            if mtx.start_map(
                claim.execution_id,
                claim.row_id,
                claim.claim_token,
                task.id,
                len(items),
                task.max_parallel,
                base_json,
            ):
                self.cache.put(claim.execution_id, BASE_KEY + task.id, base_json)
                started.append(Expansion(claim, task, JsonItems(items)))
                detail = json.dumps({"instances": len(items), "max_parallel": task.max_parallel})
                fx.events.append(
                    NewEvent(claim.execution_id, task.id, "map_started", claim.attempt, detail, now)
                )
        if ended:
            self.scheduler.apply_all(tx, ended, now, fx)
        return started

    def instance_inputs(self, tx: WriteTx, claim: Claim, task_id: str) -> list[str]:
        """An instance's input: its mapped task's input without the list, then its item."""
        key = BASE_KEY + task_id
        base = self.cache.get(claim.execution_id, key)
        if base is None:
            assert claim.map_parent is not None
            base = map_tx(tx).map_base(claim.map_parent) or "{}"
            self.cache.put(claim.execution_id, key, base)
        return [base, item_input(claim.map_item)]

    # ---- instances settled -----------------------------------------------------------------
    def apply(
        self, tx: WriteTx, items: Sequence[tuple[Workflow, Outcome]], now: float, fx: Effects
    ) -> None:
        """Record instances' outcomes: completions as one batch, retries as for any task;
        then count them off their mapped tasks, and finish those with none left."""
        mtx = map_tx(tx)
        counts: dict[int, list[int]] = {}  # parent row -> [settled, failed]
        where: dict[int, tuple[Workflow, str, str]] = {}  # parent row -> wf, run, task id
        completions = []
        for wf, outcome in items:
            claim = outcome.claim
            assert claim.map_parent is not None
            where[claim.map_parent] = (wf, claim.execution_id, map_base_id(claim.task_id))
            if outcome.kind == COMPLETED:
                assert outcome.output_json is not None
                completions.append(Completion(claim, outcome.output_json, outcome.finished_at, ()))
                continue
            task = wf.tasks[map_base_id(claim.task_id)]
            exc = outcome.exc
            if (
                outcome.kind == FAILED
                and exc is not None
                and task.retry.should_retry(exc, claim.attempt)
            ):
                delay = task.retry.delay_for(claim.attempt, self.scheduler.rng)
                if tx.schedule_retry(
                    claim, now + delay, outcome.error or "", outcome.traceback, now
                ):
                    fx.retry_at.append(now + delay)
                continue
            error = outcome.error or outcome.skip_reason or "failed"
            if tx.finish_task(
                claim,
                TaskStatus.FAILED,
                outcome.finished_at or now,
                error=error,
                traceback=outcome.traceback,
            ):
                c = counts.setdefault(claim.map_parent, [0, 0])
                c[0] += 1
                c[1] += 1
        for item in mtx.complete_instances(completions):
            parent = item.claim.map_parent
            assert parent is not None
            counts.setdefault(parent, [0, 0])[0] += 1
        for parent in sorted(counts):
            settled, failed = counts[parent]
            wf, eid, task_id = where[parent]
            self.settled(tx, wf, eid, task_id, parent, settled, failed, now, fx)

    def abandoned(
        self, tx: WriteTx, wf: Workflow, execution_id: str, row_id: int, now: float, fx: Effects
    ) -> None:
        """An instance failed for good outside an outcome (its workers kept dying)."""
        mtx = map_tx(tx)
        parent = mtx.map_parent_of(row_id)
        task_id = None if parent is None else mtx.task_id_of(parent)
        if parent is not None and task_id is not None:
            self.settled(tx, wf, execution_id, task_id, parent, 1, 1, now, fx)

    def settled(
        self,
        tx: WriteTx,
        wf: Workflow,
        execution_id: str,
        task_id: str,
        parent: int,
        settled: int,
        failed: int,
        now: float,
        fx: Effects,
    ) -> None:
        """Count settled instances off their mapped task; finish it when none are left."""
        mtx = map_tx(tx)
        task = wf.tasks[task_id]
        remaining, failed_total, total = mtx.instances_settled(
            parent, settled, failed, task.max_parallel
        )
        if remaining > 0:
            return
        if failed_total and not task.allow_partial:
            shown = mtx.failed_map_indexes(parent, FAILED_INDEXES_SHOWN)
            more = ", ..." if failed_total > len(shown) else ""
            first = mtx.map_instance_error(parent, shown[0]) if shown else None
            error = (
                f"task {task_id!r}: {failed_total} of {total} instances failed (indexes "
                f"{', '.join(map(str, shown))}{more})"
                + (f"; instance {shown[0]}: {first}" if first else "")
            )
            if mtx.finish_map_task(
                parent,
                TaskStatus.FAILED,
                now,
                execution_id=execution_id,
                task_id=task_id,
                error=error,
            ):
                detail = json.dumps({"error": error, "failed": failed_total, "total": total})
                fx.events.append(NewEvent(execution_id, task_id, "task_failed", None, detail, now))
                self.scheduler.settle(tx, wf, execution_id, [(task_id, FAILED)], now, fx)
            return
        output = self._gather(mtx, parent, task_id, task.map_over or "", total)
        if mtx.finish_map_task(
            parent,
            TaskStatus.COMPLETED,
            now,
            execution_id=execution_id,
            task_id=task_id,
            output_json=output,
        ):
            self.cache.stage(execution_id, task_id, output)
            detail = json.dumps({"instances": total, "failed": failed_total})
            fx.events.append(NewEvent(execution_id, task_id, "task_completed", None, detail, now))
            self.scheduler.settle(tx, wf, execution_id, [(task_id, COMPLETED)], now, fx)

    @staticmethod
    def _gather(mtx: MapWrites, parent: int, task_id: str, key: str, total: int) -> str:
        """The mapped task's output, built as text from the stored pieces: its input (the
        kept base, plus the list rebuilt from the items) and the instances' values, in
        index order, read a page at a time (no value parsed)."""
        base = json.loads(mtx.map_base(parent) or "{}")
        base.pop(key, None)
        base.pop(task_id, None)
        head = dumps_context(base)[:-1]
        items: list[str] = []
        values: list[str] = []
        for item, output in mtx.map_outputs(parent, total):
            items.append(item)
            values.append("null" if output is None else output)
        sep = "," if len(head) > 1 else ""
        return (
            f"{head}{sep}{json.dumps(key)}:[{','.join(items)}],"
            f"{json.dumps(task_id)}:[{','.join(values)}]}}"
        )


class MapClaims:
    """The engine's side of mapped tasks: their claims expanded, their instances' jobs (a
    mixin of :class:`~cloacina.engine.engine.Engine`, which provides these attributes)."""

    tenant: str
    scheduler: Scheduler
    _maybe_ready: bool
    _expanded: bool
    #: Mapped tasks whose instances are still being made, by row id.
    _expansions: dict[int, Expansion]
    #: What this cycle's batch did (row id, instances made in all or None if fenced out).
    _grown: tuple[int, int | None] | None

    if TYPE_CHECKING:

        def _workflow(self, claim: Claim) -> Workflow | None: ...

    def _instance_job(self, tx: WriteTx, claim: Claim, wf: Workflow) -> Job:
        """The job of an instance: its mapped task's body, its own index and input."""
        task_id = map_base_id(claim.task_id)
        info = TaskInfo(
            execution_id=claim.execution_id,
            task_id=task_id,
            workflow_name=wf.name,
            namespace=str(wf.namespace(task_id, self.tenant)),
            attempt=claim.attempt,
            recovery=claim.recovery_count,
            map_index=claim.map_index,
        )
        inputs = self.scheduler.fanout.instance_inputs(tx, claim, task_id)
        return Job(claim, wf.tasks[task_id], inputs, info, origin=wf.origin)

    def _expand_maps(self, tx: WriteTx, jobs: list[Job], now: float, fx: Effects) -> list[Job]:
        """Claimed mapped tasks become their instances (no body runs for them); the rest
        of ``jobs`` are returned. Dependents an empty list made runnable go to the queue."""
        before = len(fx.ready)
        parents: dict[str, list[Job]] = {}
        for job in jobs:
            if is_map_parent(job):
                parents.setdefault(job.claim.execution_id, []).append(job)
        for eid_jobs in parents.values():
            wf = self._workflow(eid_jobs[0].claim)
            assert wf is not None  # the engine made jobs only of known workflows
            for expansion in self.scheduler.fanout.expand(tx, wf, eid_jobs, now, fx):
                self._expansions[expansion.claim.row_id] = expansion
        if len(fx.ready) > before:
            tx.mark_ready([r.row_id for r in fx.ready[before:]])
            del fx.ready[before:]
            self._maybe_ready = True
            self._expanded = True
        return [job for job in jobs if not is_map_parent(job)]

    def _grow_maps(self, tx: WriteTx) -> None:
        """Make the next batch of instances of a map being expanded (one batch per cycle,
        the maps taking turns, so that a map of a million items never holds the database's
        write lock for long). What it did counts once the cycle commits (:meth:`_maps_grown`)."""
        row_id, expansion = next(iter(self._expansions.items()))
        del self._expansions[row_id]
        self._expansions[row_id] = expansion  # to the back of the line
        claim = expansion.claim
        made = map_tx(tx).add_instances(
            claim.execution_id,
            row_id,
            claim.claim_token,
            expansion.task.id,
            expansion.items,
            expansion.task.retry.max_attempts,
        )
        self._grown = (row_id, made)
        self._maybe_ready = True
        self._expanded = True

    def _maps_grown(self) -> None:
        """The cycle committed: a map whose last instances it made (or whose claim was lost:
        its run was cancelled) is no longer expanded."""
        if self._grown is None:
            return
        row_id, made = self._grown
        self._grown = None
        expansion = self._expansions.get(row_id)
        if expansion is not None and (made is None or made >= len(expansion.items)):
            del self._expansions[row_id]
