"""The store's side of map_over on SQLite and PostgreSQL: a map's instances are made a
batch at a time under its task's claim, and a claim taken after a lost one goes on from
the instances already made (none twice, none missing); the window of ``max_parallel``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cloacina.store import Store, open_store
from cloacina.store.fanout import MapWrites

KEYS = [("wf", "v1")]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def rows(store: Store, eid: str) -> list[tuple[Any, ...]]:
    with store.write() as tx:
        return [
            tuple(r)
            for r in tx._c.execute(  # type: ignore[attr-defined]
                "SELECT map_index, status, map_item FROM task_executions"
                " WHERE execution_id=? AND map_parent IS NOT NULL ORDER BY map_index",
                (eid,),
            ).fetchall()
        ]


def test_instances_made_in_batches_go_on_after_a_lost_claim(
    store: Store, insert_run: Callable[..., str]
) -> None:
    eid = insert_run(store, [("m", 0, 0, 1)])
    items = [f'"i{i}"' for i in range(12)]
    with store.write() as tx:
        assert isinstance(tx, MapWrites)
        (claim,) = tx.claim_ready(1, KEYS, "w1", time.time())
        assert tx.start_map(eid, claim.row_id, claim.claim_token, "m", 12, 3, "{}")
        assert tx.add_instances(eid, claim.row_id, claim.claim_token, "m", items, 1, 5) == 5
        assert tx.add_instances(eid, claim.row_id, claim.claim_token, "m", items, 1, 5) == 10
    # The worker is lost: its claim is handed back, another takes the task.
    with store.write() as tx:
        assert tx.hand_back([claim]) == [claim]
    with store.write() as tx:
        assert isinstance(tx, MapWrites)
        (again,) = tx.claim_ready(1, KEYS, "w2", time.time())
        assert again.row_id == claim.row_id
        assert tx.add_instances(eid, claim.row_id, claim.claim_token, "m", items, 1) is None
        assert tx.start_map(eid, again.row_id, again.claim_token, "m", 12, 3, "{}")
        assert tx.add_instances(eid, again.row_id, again.claim_token, "m", items, 1, 5) == 12
    made = rows(store, eid)
    assert [r[0] for r in made] == list(range(12))
    assert [r[2] for r in made] == items
    # The window: the first three ready, the rest waiting for settled instances.
    assert [r[1] for r in made] == ["ready"] * 3 + ["pending"] * 9
    task = store.get_tasks(eid, "m")[0]
    assert task.status == "running" and task.worker_id is None  # its claim is released
    assert task.map_total == 12
    with store.write() as tx:
        assert isinstance(tx, MapWrites)
        assert tx.instances_settled(claim.row_id, 2, 1, 3) == (10, 1, 12)
    assert [r[1] for r in rows(store, eid)][:6] == ["ready"] * 5 + ["pending"]
