"""Completion and readiness: what a task's outcome means for its run, in one transaction.

Given the outcomes of finished task bodies, the scheduler records each one (fenced by its
claim token), retries or fails it, settles its dependents through their trigger rules (a skip
cascades), and finishes the run when its last task settles. Everything goes through the
store's :class:`WriteTx`, so it all commits together.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cloacina.engine.alerts import Alert, run_failed
from cloacina.engine.executor import COMPLETED, FAILED, SKIPPED, Outcome
from cloacina.engine.fanout import Fanout
from cloacina.model.context import deep_merge, dumps_context
from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.model.rules import DepCounts, StatusRule, TriggerRule, Verdict
from cloacina.model.status import ExecutionStatus
from cloacina.model.workflow import Workflow
from cloacina.store.base import WriteTx
from cloacina.store.records import (
    Completion,
    DependentState,
    NewEvent,
    ReadyTask,
    RunProgress,
)
from cloacina.store.subworkflows import SubWrites


class RunCache:
    """Outputs of recent runs kept in memory, so a dependent's input needs no query.

    Outputs written inside a transaction are *staged*: visible to the rest of that
    transaction, kept only once it commits (:meth:`commit_staged`), forgotten if it fails
    (:meth:`discard_staged`) — a fenced-out claim's output must never feed a dependent.
    """

    def __init__(self, max_runs: int = 2048) -> None:
        self._runs: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._max = max_runs
        self._staged: dict[tuple[str, str], str] = {}

    def stage(self, execution_id: str, key: str, value: str) -> None:
        self._staged[(execution_id, key)] = value

    def commit_staged(self) -> None:
        if self._staged:
            for (execution_id, key), value in self._staged.items():
                self.put(execution_id, key, value)
            self._staged = {}

    def discard_staged(self) -> None:
        self._staged = {}

    def put(self, execution_id: str, key: str, value: str) -> None:
        run = self._runs.get(execution_id)
        if run is None:
            run = self._runs[execution_id] = {}
            if len(self._runs) > self._max:
                self._runs.popitem(last=False)
        run[key] = value

    def get(self, execution_id: str, key: str) -> str | None:
        if self._staged:
            staged = self._staged.get((execution_id, key))
            if staged is not None:
                return staged
        run = self._runs.get(execution_id)
        return None if run is None else run.get(key)

    def drop(self, execution_id: str) -> None:
        self._runs.pop(execution_id, None)


INPUT_KEY = "\x00input"  # the run's input context, beside the task outputs in the cache


@dataclass
class Effects:
    """What a transaction did that the engine must act on after it commits."""

    events: list[NewEvent] = field(default_factory=list)
    finished_runs: list[tuple[str, str]] = field(default_factory=list)  # (execution_id, status)
    retry_at: list[float] = field(default_factory=list)
    #: Dependents that became runnable in a running run: the engine claims them directly
    #: (pending -> running) or marks them ready for whoever has a free slot.
    ready: list[ReadyTask] = field(default_factory=list)
    #: Alerts the transaction raised: into the outbox before it commits, to the callbacks
    #: after (see engine/alerts.py).
    alerts: list[Alert] = field(default_factory=list)


def skip_reason(rule: TriggerRule, deps: DepCounts) -> str:
    if isinstance(rule, StatusRule) and rule.kind in ("all_success", "none_failed"):
        if deps.failed:
            return f"{deps.failed} of {deps.total} dependencies failed"
        return f"{deps.skipped} of {deps.total} dependencies were skipped"
    if isinstance(rule, StatusRule) and rule.kind == "one_failed":
        return "no dependency failed"
    return (
        f"trigger rule not met: {rule.describe()} ({deps.completed} completed, "
        f"{deps.failed} failed, {deps.skipped} skipped of {deps.total})"
    )


class Scheduler:
    """Applies outcomes to the store inside a write transaction."""

    def __init__(
        self,
        cache: RunCache,
        rng: random.Random | None = None,
        tenant: str = DEFAULT_TENANT,
        max_map_items: int = 1_000_000,
    ) -> None:
        self.cache = cache
        self.rng = rng or random.Random()
        self.tenant = tenant  # named in the alerts it raises
        #: Mapped tasks' instances (engine/fanout.py).
        self.fanout = Fanout(self, cache, max_map_items)

    def apply_all(
        self, tx: WriteTx, items: Sequence[tuple[Workflow, Outcome]], now: float, fx: Effects
    ) -> None:
        """Apply outcomes that arrived together. Successes are recorded as one batch (one
        statement where the backend can); failures, skips and retries one by one."""
        completions: list[Completion] = []
        workflows: dict[str, Workflow] = {}
        instances: list[tuple[Workflow, Outcome]] = []
        for wf, outcome in items:
            if outcome.claim.map_parent is not None:  # an instance of a mapped task
                instances.append((wf, outcome))
            elif outcome.kind == COMPLETED:
                assert outcome.output_json is not None
                claim = outcome.claim
                completions.append(
                    Completion(
                        claim,
                        outcome.output_json,
                        outcome.finished_at,
                        wf.graph.dependents[claim.task_id],
                    )
                )
                workflows[claim.execution_id] = wf
            else:
                self._apply_one(tx, wf, outcome, now, fx)
        if instances:
            self.fanout.apply(tx, instances, now, fx)
        if completions:
            self._complete(tx, completions, workflows, now, fx)

    def _complete(
        self,
        tx: WriteTx,
        completions: list[Completion],
        workflows: dict[str, Workflow],
        now: float,
        fx: Effects,
    ) -> None:
        result = tx.complete_tasks(completions, now)
        for item in result.completed:
            claim = item.claim
            eid, tid = claim.execution_id, claim.task_id
            self.cache.stage(eid, tid, item.output_json)  # kept once the transaction commits
            duration = round(item.finished_at - claim.started_at, 6)
            fx.events.append(
                NewEvent(
                    eid, tid, "task_completed", claim.attempt, f'{{"duration":{duration}}}', now
                )
            )
        for eid, progress in result.progress.items():
            wf = workflows[eid]
            ready: list[ReadyTask] = []
            states = result.dependents.get(eid, {})
            count, failed = self._cascade(tx, wf, eid, [], states.values(), now, fx, ready)
            if count:  # skips cascaded from the completions
                progress = tx.run_progress(eid, count, failed, now)
            self._progressed(tx, wf, eid, progress, ready, now, fx)

    def _apply_one(
        self, tx: WriteTx, wf: Workflow, outcome: Outcome, now: float, fx: Effects
    ) -> None:
        """Apply one outcome that is not a success: a skip, a retry or a failure."""
        claim = outcome.claim
        eid, tid = claim.execution_id, claim.task_id
        if outcome.kind == SKIPPED:
            if not tx.finish_task(claim, SKIPPED, now, skip_reason=outcome.skip_reason):
                return
            fx.events.append(
                NewEvent(eid, tid, "task_skipped", claim.attempt, _detail(outcome), now)
            )
            self.settle(tx, wf, eid, [(tid, SKIPPED)], now, fx)
        else:
            task = wf.tasks[tid]
            exc = outcome.exc
            attempt = claim.attempt
            if attempt > 1 and exc is not None:  # a rerun's attempts get retries of their own
                attempt -= tx.rerun_base(eid, tid)
            if exc is not None and task.retry.should_retry(exc, attempt):
                delay = task.retry.delay_for(attempt, self.rng)
                retry_at = now + delay
                if tx.schedule_retry(claim, retry_at, outcome.error or "", outcome.traceback, now):
                    detail = json.dumps({"error": outcome.error, "retry_in": round(delay, 3)})
                    fx.events.append(
                        NewEvent(eid, tid, "task_retry_scheduled", claim.attempt, detail, now)
                    )
                    fx.retry_at.append(retry_at)
                return
            if not tx.finish_task(
                claim,
                FAILED,
                outcome.finished_at or now,
                error=outcome.error,
                traceback=outcome.traceback,
            ):
                return
            fx.events.append(
                NewEvent(eid, tid, "task_failed", claim.attempt, _detail(outcome), now)
            )
            self.settle(tx, wf, eid, [(tid, FAILED)], now, fx)

    def settle(
        self,
        tx: WriteTx,
        wf: Workflow,
        execution_id: str,
        settled: list[tuple[str, str]],
        now: float,
        fx: Effects,
    ) -> None:
        """Tasks reached a terminal status: update their dependents, cascade skips, and
        finish the run when nothing is left."""
        ready: list[ReadyTask] = []
        count, failed = self._cascade(tx, wf, execution_id, settled, (), now, fx, ready)
        progress = tx.run_progress(execution_id, count, failed, now)
        self._progressed(tx, wf, execution_id, progress, ready, now, fx)

    def judge(
        self,
        tx: WriteTx,
        wf: Workflow,
        execution_id: str,
        states: Iterable[DependentState],
        now: float,
        fx: Effects,
    ) -> None:
        """Tasks made pending again (a rerun): those whose dependencies are settled are
        judged by their trigger rules (ready, or skipped with the skip cascading), and the
        run finishes if nothing is left to run."""
        ready: list[ReadyTask] = []
        count, failed = self._cascade(tx, wf, execution_id, [], states, now, fx, ready)
        progress = tx.run_progress(execution_id, count, failed, now)
        self._progressed(tx, wf, execution_id, progress, ready, now, fx)

    def _cascade(
        self,
        tx: WriteTx,
        wf: Workflow,
        execution_id: str,
        settled: list[tuple[str, str]],
        states: Iterable[DependentState],
        now: float,
        fx: Effects,
        ready: list[ReadyTask],
    ) -> tuple[int, int]:
        """Judge dependents by their trigger rules: those that may run go to ``ready``,
        those to skip are skipped, and the skip cascades. ``settled`` are tasks that just
        became terminal (their dependents still to bump); ``states`` are dependents already
        bumped. Returns how many tasks this settled, and how many of them failed."""
        queue = list(settled)
        count = failed = 0
        while True:
            for st in states:
                rule = wf.tasks[st.task_id].trigger_rule
                deps = DepCounts(st.deps_total, st.deps_remaining, st.deps_failed, st.deps_skipped)
                verdict = rule.evaluate(deps)
                if verdict is Verdict.RUN and st.deps_remaining:
                    # A combined rule may say "run" early; a task still starts only once all
                    # its dependencies are settled, so its input context is deterministic.
                    continue
                if verdict is Verdict.RUN or verdict is Verdict.NEEDS_CONTEXT:
                    ready.append(
                        ReadyTask(
                            st.row_id,
                            execution_id,
                            st.task_id,
                            wf.name,
                            wf.version,
                            st.deps_total,
                            st.deps_failed,
                            st.deps_skipped,
                        )
                    )
                elif verdict is Verdict.SKIP:
                    reason = skip_reason(rule, deps)
                    if tx.mark_skipped(st.row_id, reason, now):
                        fx.events.append(
                            NewEvent(
                                execution_id,
                                st.task_id,
                                "task_skipped",
                                None,
                                json.dumps({"reason": reason}),
                                now,
                            )
                        )
                        queue.append((st.task_id, SKIPPED))
            if not queue:
                return count, failed
            tid, status = queue.pop()
            count += 1
            failed += status == FAILED
            dependents = wf.graph.dependents[tid]
            states = (
                tx.bump_dependents(
                    execution_id, dependents, int(status == FAILED), int(status == SKIPPED)
                )
                if dependents
                else ()
            )

    def _progressed(
        self,
        tx: WriteTx,
        wf: Workflow,
        execution_id: str,
        progress: RunProgress,
        ready: list[ReadyTask],
        now: float,
        fx: Effects,
    ) -> None:
        """After the run's counters moved: hand over the ready dependents, and finish the
        run when nothing is left."""
        if ready:
            if progress.status == "running":
                fx.ready.extend(ready)
            else:  # paused: ready, but not started until the run resumes
                tx.mark_ready([r.row_id for r in ready])
        if progress.tasks_remaining <= 0 and progress.status in ("running", "paused"):
            self._finish_run(tx, wf, execution_id, progress.tasks_failed, now, fx)

    def _finish_run(
        self, tx: WriteTx, wf: Workflow, execution_id: str, failed: int, now: float, fx: Effects
    ) -> None:
        leaves = wf.graph.leaves
        outputs: dict[str, str] = {}
        missing = []
        for leaf in leaves:
            text = self.cache.get(execution_id, leaf)
            if text is None:
                missing.append(leaf)
            else:
                outputs[leaf] = text
        if missing:
            outputs.update(tx.get_outputs(execution_id, missing))
        final = deep_merge(*(json.loads(outputs[leaf]) for leaf in leaves if leaf in outputs))
        error = None
        errors: list[tuple[str, str | None]] = []
        status = ExecutionStatus.COMPLETED
        if failed:
            status = ExecutionStatus.FAILED
            errors = tx.failed_task_errors(execution_id)
            task_id, detail = errors[0] if errors else ("?", None)
            named, text = f"task {task_id!r}", str(detail or "")
            # A task's error often names the task already ("task 'a': timed out after 3s"):
            # say it once, not "task 'a' failed: task 'a': ...".
            if text.startswith(named):
                error = text
            else:
                error = f"{named} failed: {text}" if text else f"{named} failed"
            if len(errors) > 1:
                error += f" (and {len(errors) - 1} more failed task(s))"
        if tx.finish_run(execution_id, status, now, final_json=dumps_context(final), error=error):
            event = f"execution_{status}"
            fx.events.append(NewEvent(execution_id, None, event, None, None, now))
            fx.finished_runs.append((execution_id, status))
            if isinstance(tx, SubWrites) and tx.child_ended(execution_id):
                fx.retry_at.append(now)  # a sub-workflow task is ready: look for it at once
            if status == ExecutionStatus.FAILED:  # one alert per failed run, never per retry
                fx.alerts.append(
                    run_failed(
                        self.tenant,
                        execution_id,
                        wf.name,
                        wf.version,
                        wf.package,
                        error,
                        [task_id for task_id, _ in errors],
                        now,
                    )
                )


def _detail(outcome: Outcome) -> str | None:
    if outcome.kind == SKIPPED:
        return json.dumps({"reason": outcome.skip_reason})
    if outcome.kind == FAILED:
        duration = round(outcome.finished_at - outcome.claim.started_at, 6)
        return json.dumps({"error": outcome.error, "duration": duration})
    return None
