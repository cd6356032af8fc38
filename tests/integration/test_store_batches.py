"""The store's batched writes, on SQLite and PostgreSQL: a batch of completions (fenced by
claim tokens, dependents bumped once per completed dependency, runs counted down), batch
claims, run locks and deferred writes that must still commit or roll back with the rest."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from cloacina.store import Store, open_store
from cloacina.store.records import Claim, Completion, CompletionResult, NewEvent, ReadyTask

# root -> a, b, c -> join
TASKS = [("root", 0, 0, 1), ("a", 1, 1, 1), ("b", 2, 1, 1), ("c", 3, 1, 1), ("join", 4, 3, 1)]
DEPENDENTS = {"root": ("a", "b", "c"), "a": ("join",), "b": ("join",), "c": ("join",)}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def new_run(insert_run: Callable[..., str]) -> Callable[[Store], str]:
    def new(store: Store) -> str:
        return insert_run(store, TASKS, '{"n": 1}')

    return new


def claim_roots(store: Store, limit: int = 100) -> list[Claim]:
    with store.write() as tx:
        return tx.claim_ready(limit, [("wf", "v1")], "me", time.time())


def complete(store: Store, claims: list[Claim], output: str = '{"x": 1}') -> CompletionResult:
    now = time.time()
    items = [Completion(c, output, now, DEPENDENTS.get(c.task_id, ())) for c in claims]
    with store.write() as tx:
        tx.lock_runs(sorted({c.execution_id for c in claims}))
        return tx.complete_tasks(items, now)


def claim_pending(store: Store, eid: str, task_ids: list[str]) -> list[Claim]:
    rows = {t.task_id: t for t in store.get_tasks(eid)}
    with store.write() as tx:
        return tx.claim_pending(
            [ReadyTask(rows[t].id, eid, t, "wf", "v1", 1, 0, 0) for t in task_ids],
            "me",
            time.time(),
        )


def test_claim_ready_brings_a_roots_input(store: Store, new_run: Callable[[Store], str]) -> None:
    eid = new_run(store)
    (root,) = claim_roots(store)
    assert root.task_id == "root" and root.execution_id == eid
    if root.input_json is not None:  # PostgreSQL brings it along; SQLite reads it later
        assert root.input_json == '{"n": 1}'


def test_a_batch_completes_bumps_dependents_and_counts_runs(
    store: Store, new_run: Callable[[Store], str]
) -> None:
    first, second = new_run(store), new_run(store)
    roots = claim_roots(store)
    assert {c.execution_id for c in roots} == {first, second}
    result = complete(store, roots)
    assert sorted(i.claim.execution_id for i in result.completed) == sorted([first, second])
    for eid in (first, second):
        states = {s.task_id: s for s in result.dependents[eid].values()}
        assert set(states) == {"a", "b", "c"}
        assert all(s.deps_remaining == 0 for s in states.values())
        assert result.progress[eid].tasks_remaining == 4
        assert result.progress[eid].status == "running"
        outputs = {t.task_id: t.status for t in store.get_tasks(eid)}
        assert outputs["root"] == "completed"

    # Two of the three middle tasks of one run in one batch: the join is bumped by two.
    middle = claim_pending(store, first, ["a", "b", "c"])
    assert len(middle) == 3
    result = complete(store, middle[:2])
    (join,) = result.dependents[first].values()
    assert (join.task_id, join.deps_total, join.deps_remaining) == ("join", 3, 1)
    assert result.progress[first].tasks_remaining == 2
    result = complete(store, middle[2:])
    (join,) = result.dependents[first].values()
    assert join.deps_remaining == 0
    assert result.progress[first].tasks_remaining == 1


def test_a_fenced_out_claim_changes_nothing(store: Store, new_run: Callable[[Store], str]) -> None:
    eid = new_run(store)
    (root,) = claim_roots(store)
    stolen = Claim(
        root.row_id,
        eid,
        "root",
        root.attempt,
        root.recovery_count,
        "someone-elses-token",
        "wf",
        "v1",
        root.started_at,
    )
    result = complete(store, [stolen])
    assert result.completed == [] and result.dependents == {} and result.progress == {}
    assert {t.task_id: t.status for t in store.get_tasks(eid)}["root"] == "running"
    assert store.get_execution(eid).tasks_remaining == 5  # type: ignore[union-attr]
    # The rightful owner still completes it, with its output.
    result = complete(store, [root], '{"from": "owner"}')
    assert [i.claim.task_id for i in result.completed] == ["root"]
    with store.write() as tx:
        assert tx.get_outputs(eid, ["root"]) == {"root": '{"from": "owner"}'}


def test_claim_pending_claims_only_pending_rows(
    store: Store, new_run: Callable[[Store], str]
) -> None:
    eid = new_run(store)
    complete(store, claim_roots(store))
    got = claim_pending(store, eid, ["a", "b"])
    assert sorted(c.task_id for c in got) == ["a", "b"]
    assert len({c.claim_token for c in got}) == 2
    assert all(c.attempt == 1 for c in got)
    assert claim_pending(store, eid, ["a", "b"]) == []  # already running


def test_deferred_writes_roll_back_with_the_transaction(
    store: Store, new_run: Callable[[Store], str]
) -> None:
    eid = new_run(store)
    with pytest.raises(RuntimeError), store.write() as tx:
        tx.lock_runs([eid])
        tx.add_events([NewEvent(eid, None, "marker", None, None, time.time())])
        raise RuntimeError("boom")
    assert [e.event for e in store.get_events(eid)] == []
    with store.write() as tx:
        tx.lock_runs([eid])
        tx.add_events(
            [
                NewEvent(eid, None, "one", None, None, time.time()),
                NewEvent(eid, "a", "two", 1, '{"k": 1}', 0.5),
            ]
        )
    events = store.get_events(eid)
    assert [(e.event, e.task_id, e.attempt, e.detail) for e in events] == [
        ("one", None, None, None),
        ("two", "a", 1, '{"k": 1}'),
    ]


def test_a_transaction_that_writes_nothing_is_harmless(
    store: Store, new_run: Callable[[Store], str]
) -> None:
    eid = new_run(store)
    for _ in range(3):
        with store.write() as tx:
            tx.lock_runs([eid])
    assert store.get_execution(eid) is not None
    assert claim_roots(store)[0].execution_id == eid


def test_claim_tokens_can_be_drawn_from_many_threads_at_once() -> None:
    """Write transactions on PostgreSQL run on several threads at once (the engine, a
    client scheduling, recovery), and each draws claim tokens: no thread may fail, and no
    token may repeat. (A generator was used before; CPython 3.11 happens not to switch
    threads inside one, but nothing promises that.)"""
    import sys
    import threading

    from cloacina.store.sql_common import ClaimTokens

    tokens = ClaimTokens("p.")
    drawn: list[list[str]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def draw(out: list[str]) -> None:
        try:
            for _ in range(20_000):
                out.append(next(tokens))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    everything = [t for out in drawn for t in out]
    assert len(set(everything)) == len(everything) == 160_000
