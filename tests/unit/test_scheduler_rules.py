"""The scheduler's rules on the in-memory run store: completion, readiness, retries, skips
that cascade, trigger rules, fencing, paused runs and the end of a run. No database, no
threads: outcomes are made up and applied as the engine would apply them."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloacina import Context, ExecutionStatus, RetryPolicy, TaskError
from cloacina.engine.executor import COMPLETED, FAILED, Outcome
from cloacina.engine.scheduler import Effects, RunCache, Scheduler
from cloacina.model.task import Task
from cloacina.model.workflow import Workflow
from cloacina.store.memory import MemoryRunStore
from cloacina.store.records import Claim, NewTask


def _noop(context: Context) -> None:
    return None


def make_workflow(
    edges: dict[str, tuple[str, ...]], rules: dict[str, str] | None = None, **retry: Any
) -> Workflow:
    policy = RetryPolicy(**retry) if retry else None
    tasks = [
        Task(_noop, id=tid, dependencies=deps, retry=policy, trigger_rule=(rules or {}).get(tid))
        for tid, deps in edges.items()
    ]
    return Workflow.from_tasks("wf", tasks)


class Harness:
    """A run of ``wf`` on a memory store, driven one batch of outcomes at a time."""

    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        self.store = MemoryRunStore()
        self.scheduler = Scheduler(RunCache(), random.Random(0))
        self.eid = "run-1"
        with self.store.write() as tx:
            tx.create_execution(
                self.eid,
                tenant="public",
                package="embedded",
                workflow_name=wf.name,
                workflow_version=wf.version,
                input_json='{"input": 1}',
                tasks=[
                    NewTask(tid, i, t.dependencies, t.retry.max_attempts)
                    for i, (tid, t) in enumerate(wf.tasks.items())
                ],
                now=time.time(),
            )
        self.running: dict[str, Claim] = {}

    def claim(self, fx: Effects | None = None) -> list[str]:
        """Claim what is ready (directly from ``fx`` and by a search, as the engine does)."""
        with self.store.write() as tx:
            direct = tx.claim_pending(fx.ready, "w", time.time()) if fx else []
            found = tx.claim_ready(100, [(self.wf.name, self.wf.version)], "w", time.time())
        for claim in direct + found:
            self.running[claim.task_id] = claim
        return sorted(c.task_id for c in direct + found)

    def finish(self, **kinds: str) -> Effects:
        """Apply outcomes: ``finish(a="completed", b="failed")``."""
        fx = Effects()
        now = time.time()
        items = []
        for tid, kind in kinds.items():
            claim = self.running.pop(tid)
            if kind == COMPLETED:
                outcome = Outcome(
                    claim, COMPLETED, output_json=json.dumps({tid: 1}), finished_at=now
                )
            else:
                err = TaskError(f"{tid} broke")
                outcome = Outcome(claim, FAILED, error=str(err), exc=err, finished_at=now)
            items.append((self.wf, outcome))
        with self.store.write() as tx:
            self.scheduler.apply_all(tx, items, now, fx)
            tx.add_events(fx.events)  # as the engine does, in the same transaction
        self.scheduler.cache.commit_staged()
        return fx

    def statuses(self) -> dict[str, str]:
        return {t.task_id: t.status for t in self.store.get_tasks(self.eid)}

    def status(self) -> str | None:
        return self.store.execution_status(self.eid)


def test_a_chain_runs_in_order_and_the_run_completes_with_the_leaves_outputs() -> None:
    h = Harness(make_workflow({"a": (), "b": ("a",), "c": ("b",)}))
    assert h.claim() == ["a"]
    fx = h.finish(a=COMPLETED)
    assert [r.task_id for r in fx.ready] == ["b"]
    assert h.claim(fx) == ["b"]
    fx = h.finish(b=COMPLETED)
    assert h.claim(fx) == ["c"]
    fx = h.finish(c=COMPLETED)
    assert fx.finished_runs == [(h.eid, "completed")]
    row = h.store.get_execution(h.eid)
    assert row is not None and row.status == "completed"
    # a leaf's output is its whole context: the input of c was the merge of a's and b's
    assert json.loads(row.final_context or "{}") == {"c": 1}


def test_a_join_waits_for_every_dependency() -> None:
    h = Harness(make_workflow({"a": (), "b": (), "join": ("a", "b")}))
    assert h.claim() == ["a", "b"]
    fx = h.finish(a=COMPLETED)
    assert fx.ready == [] and h.statuses()["join"] == "pending"
    fx = h.finish(b=COMPLETED)
    assert [r.task_id for r in fx.ready] == ["join"]


def test_a_failure_skips_its_dependents_and_the_skip_cascades() -> None:
    h = Harness(make_workflow({"a": (), "b": ("a",), "c": ("b",), "d": ()}))
    assert h.claim() == ["a", "d"]
    fx = h.finish(a=FAILED, d=COMPLETED)
    assert h.statuses() == {"a": "failed", "b": "skipped", "c": "skipped", "d": "completed"}
    assert fx.finished_runs == [(h.eid, "failed")]
    row = h.store.get_execution(h.eid)
    assert row is not None and row.error == "task 'a' failed: a broke"
    skipped = [e for e in h.store.get_events(h.eid) if e.event == "task_skipped"]
    assert [e.task_id for e in skipped] == ["b", "c"]


def test_all_done_runs_after_a_failure_and_none_failed_does_not() -> None:
    h = Harness(
        make_workflow(
            {"a": (), "cleanup": ("a",), "report": ("a",)},
            rules={"cleanup": "all_done", "report": "none_failed"},
        )
    )
    h.claim()
    fx = h.finish(a=FAILED)
    assert [r.task_id for r in fx.ready] == ["cleanup"]
    assert h.statuses()["report"] == "skipped"


def test_a_failure_within_its_retries_goes_back_to_ready_and_every_attempt_is_kept() -> None:
    h = Harness(make_workflow({"a": ()}, max_attempts=2, initial_delay=0.0, jitter=False))
    h.claim()
    fx = h.finish(a=FAILED)
    assert fx.retry_at and h.statuses() == {"a": "ready"}
    assert h.claim() == ["a"]
    assert h.running["a"].attempt == 2
    fx = h.finish(a=FAILED)
    assert fx.finished_runs == [(h.eid, "failed")]
    attempts = h.store.get_attempts(h.eid)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "failed")]


def test_an_outcome_whose_claim_was_lost_changes_nothing() -> None:
    h = Harness(make_workflow({"a": (), "b": ("a",)}))
    h.claim()
    stale = h.running["a"]
    with h.store.write() as tx:
        assert tx.hand_back([stale]) == [stale]
    assert h.claim() == ["a"]  # someone (here: us) claims it again, with a new token
    fresh = h.running.pop("a")
    h.running["a"] = stale
    fx = h.finish(a=COMPLETED)  # the old claim's outcome is fenced out
    assert fx.ready == [] and h.statuses() == {"a": "running", "b": "pending"}
    h.running["a"] = fresh
    fx = h.finish(a=COMPLETED)
    assert [r.task_id for r in fx.ready] == ["b"]


def test_dependents_of_a_paused_run_wait_as_ready() -> None:
    h = Harness(make_workflow({"a": (), "b": ("a",)}))
    h.claim()
    with h.store.write() as tx:
        assert tx.set_run_status(
            h.eid, ExecutionStatus.PAUSED, (ExecutionStatus.RUNNING,), time.time()
        )
    fx = h.finish(a=COMPLETED)
    assert fx.ready == []  # not handed to the engine to start
    assert h.statuses()["b"] == "ready"
    assert h.claim() == []  # a paused run's ready tasks are not claimed
    with h.store.write() as tx:
        assert tx.set_run_status(
            h.eid, ExecutionStatus.RUNNING, (ExecutionStatus.PAUSED,), time.time()
        )
    assert h.claim() == ["b"]


def test_a_failed_transaction_leaves_nothing_behind() -> None:
    h = Harness(make_workflow({"a": (), "b": ("a",)}))
    h.claim()
    try:
        with h.store.write() as tx:
            h.scheduler.apply_all(
                tx,
                [
                    (
                        h.wf,
                        Outcome(h.running["a"], COMPLETED, output_json="{}", finished_at=1.0),
                    )
                ],
                time.time(),
                Effects(),
            )
            raise RuntimeError("the commit failed")
    except RuntimeError:
        h.scheduler.cache.discard_staged()
    assert h.statuses() == {"a": "running", "b": "pending"}
    assert h.scheduler.cache.get(h.eid, "a") is None
    assert h.store.get_attempts(h.eid) == []


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, tuple[str, ...]], dict[str, str], set[str]]:
    n = draw(st.integers(1, 9))
    edges: dict[str, tuple[str, ...]] = {}
    for i in range(n):
        earlier = [f"t{j}" for j in range(i)]
        edges[f"t{i}"] = (
            tuple(draw(st.lists(st.sampled_from(earlier), unique=True))) if earlier else ()
        )
    rules = {
        tid: draw(st.sampled_from(["all_success", "all_done", "none_failed", "one_failed"]))
        for tid in edges
    }
    failing = set(draw(st.lists(st.sampled_from(list(edges)), unique=True)))
    return edges, rules, failing


@settings(max_examples=150, deadline=None)
@given(dags())
def test_every_run_ends_and_every_task_settles_by_its_rule(
    case: tuple[dict[str, tuple[str, ...]], dict[str, str], set[str]],
) -> None:
    """Whatever the graph, the rules and which tasks fail: the run ends, every task is
    terminal, a task ran only when its rule allowed it given its dependencies' statuses,
    and the run failed exactly when a task failed."""
    edges, rules, failing = case
    h = Harness(make_workflow(edges, rules=rules))
    fx: Effects | None = None
    ran: list[str] = []
    for _ in range(len(edges) + 1):
        claimed = h.claim(fx)
        if not claimed:
            break
        ran.extend(claimed)
        fx = h.finish(**{tid: FAILED if tid in failing else COMPLETED for tid in claimed})
    statuses = h.statuses()
    assert set(statuses.values()) <= {"completed", "failed", "skipped"}, statuses
    assert h.status() == (
        "failed" if any(s == "failed" for s in statuses.values()) else "completed"
    )
    for tid in ran:
        if not edges[tid]:
            continue  # a root runs whatever its rule (the rule is about dependencies)
        deps = [statuses[d] for d in edges[tid]]
        rule = rules[tid]
        if rule == "all_success":
            assert all(d == "completed" for d in deps)
        elif rule == "none_failed":
            assert "failed" not in deps
        elif rule == "one_failed":
            assert "failed" in deps
    for tid, status in statuses.items():
        if status == "skipped":
            assert tid not in ran
