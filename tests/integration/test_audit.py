"""The audit log on real SQLite and PostgreSQL: a row for every change made while an actor is
set (and none without), rows that cannot be changed or deleted, pages newest first, and the
jsonl / csv export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import (
    ExecutionNotFoundError,
    InvalidStateError,
    RequestError,
    WorkflowNotFoundError,
)
from cloacina.service.audit import (
    Actor,
    AuditEntry,
    acting_as,
    current_actor,
    reset_actor,
    set_actor,
)
from cloacina.service.tenants import create_tenant, remove_tenant
from cloacina.store.tables import audit_log

pytestmark = pytest.mark.timeout(90)

RunnerFactory = Callable[..., DefaultRunner]
ALICE = Actor.for_key("k-1", "alice", client="10.0.0.7", request_id="req-1")


def entries(runner: DefaultRunner, **filters: object) -> list[AuditEntry]:
    return list(runner.iter_audit(**filters))  # type: ignore[arg-type]


def slow_workflow(name: str) -> str:
    @workflow(name=name)
    class slow:
        @task()
        async def nap(context: Context) -> None:
            await asyncio.sleep(30)

    return name


def quick_workflow(name: str) -> str:
    @workflow(name=name)
    class quick:
        @task()
        def one(context: Context) -> None:
            context.insert("one", 1)

    return name


def test_nothing_is_recorded_without_an_actor(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf = quick_workflow(name("quiet"))
    assert current_actor() is None
    runner.execute(wf, timeout=10)
    runner.create_api_key("k", "viewer")
    assert entries(runner) == []


def test_runs_are_audited(
    runner: DefaultRunner, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    slow = slow_workflow(name("slow"))
    quick = quick_workflow(name("quick"))
    with acting_as(ALICE):
        done = runner.execute(quick, timeout=10)
        eid = runner.schedule_workflow(slow)
        until(lambda: runner.get_execution(eid).tasks["nap"].status == "running")
        runner.pause(eid)
        with pytest.raises(InvalidStateError):
            runner.pause(eid)  # a second pause fails: audited with its error
        runner.resume(eid)
        runner.cancel(eid, reason="enough")
        with pytest.raises(ExecutionNotFoundError):
            runner.cancel("no-such-run")
        with pytest.raises(WorkflowNotFoundError):
            runner.schedule_workflow("no_such_workflow")
        with pytest.raises(InvalidStateError):  # through to_thread: the actor goes along
            asyncio.run(runner.cancel_async(done.execution_id))
    assert current_actor() is None

    got = [(e.action, e.target, e.outcome) for e in reversed(entries(runner))]
    assert got[0] == ("run.start", done.execution_id, "ok")
    assert got[1] == ("run.start", eid, "ok")
    assert got[2] == ("run.pause", eid, "ok")
    assert got[3][:2] == ("run.pause", eid) and "paused" in got[3][2]
    assert got[4] == ("run.resume", eid, "ok")
    assert got[5] == ("run.cancel", eid, "ok")
    assert got[6][:2] == ("run.cancel", "no-such-run") and "no workflow execution" in got[6][2]
    assert got[7][:2] == ("run.start", "no_such_workflow") and got[7][2] != "ok"
    assert got[8][:2] == ("run.cancel", done.execution_id) and "already" in got[8][2]
    assert len(got) == 9

    newest = entries(runner)
    cancel = next(e for e in newest if e.action == "run.cancel" and e.ok)
    assert cancel.detail == {"reason": "enough"}
    start = next(e for e in newest if e.target == eid and e.action == "run.start")
    assert start.detail == {"workflow": slow}
    for e in newest:
        assert (e.actor, e.key_id, e.client, e.request_id, e.tenant) == (
            "key:k-1 (alice)",
            "k-1",
            "10.0.0.7",
            "req-1",
            "public",
        )


PKG_FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="audit_flow", package="audit_pkg")
class audit_flow:
    @task(id="only")
    def only(context: Context) -> None:
        context.insert("done", True)
"""


def test_packages_keys_tenants_and_prunes_are_audited(
    db_url: str,
    runner: DefaultRunner,
    tmp_path: Path,
    make_package: Callable[..., bytes],
) -> None:
    sources = {"audit_pkg/__init__.py": "", "audit_pkg/flows.py": textwrap.dedent(PKG_FLOW)}
    v1 = make_package(tmp_path, "audit_pkg", "1.0.0", sources, ["audit_pkg.flows"])
    v2 = make_package(tmp_path, "audit_pkg", "2.0.0", sources, ["audit_pkg.flows"])
    with acting_as(Actor.local()):
        package_id = runner.register_workflow(v1)
        runner.register_workflow(v2)
        with pytest.raises(Exception):  # noqa: B017 - the refusal's type is not the point
            runner.register_workflow(b"not a package")
        runner.promote_package("audit_pkg", "1.0.0")
        runner.promote_package("audit_pkg", None)
        runner.unregister_workflow("audit_pkg", "2.0.0")
        created = runner.create_api_key("ops", "operator")
        runner.revoke_api_key(created.id)
        create_tenant(db_url, "acme")
        remove_tenant(db_url, "acme")
        with pytest.raises(Exception):  # noqa: B017
            remove_tenant(db_url, "public")
        removed = runner.prune_executions(3600.0)

    got = [(e.action, e.target, e.outcome, e.tenant) for e in reversed(entries(runner))]
    assert got[0] == ("package.register", "audit_pkg@1.0.0", "ok", "public")
    assert got[1] == ("package.register", "audit_pkg@2.0.0", "ok", "public")
    assert got[2][0] == "package.register" and got[2][1].startswith("sha256:")
    assert got[2][2] != "ok"
    assert got[3] == ("package.promote", "audit_pkg@1.0.0", "ok", "public")
    assert got[4] == ("package.promote", "audit_pkg@highest", "ok", "public")
    assert got[5] == ("package.delete", "audit_pkg@2.0.0", "ok", "public")
    assert got[6] == ("key.create", f"{created.id} (ops)", "ok", None)
    assert got[7] == ("key.revoke", f"{created.id} (ops)", "ok", None)
    assert got[8] == ("tenant.create", "acme", "ok", "acme")
    assert got[9] == ("tenant.remove", "acme", "ok", "acme")
    assert got[10][:2] == ("tenant.remove", "public") and "public" in got[10][2]
    assert got[11] == ("runs.prune", "finished runs older than 3600.0s", "ok", "public")
    assert len(got) == 12
    newest = entries(runner)
    assert newest[0].detail == {"older_than_seconds": 3600.0, "removed": removed}
    assert newest[-1].detail is not None and newest[-1].detail["package_id"] == package_id
    key_row = next(e for e in newest if e.action == "key.create")
    assert created.key not in json.dumps(key_row.to_dict())  # never the secret
    assert all(e.actor.startswith("local:") for e in newest)


def test_a_tenant_runner_audits_into_the_default_tenant(
    db_url: str, make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    create_tenant(db_url, "acme")
    wf = quick_workflow(name("in_acme"))
    acme = make_runner(tenant="acme")
    with acting_as(ALICE):
        result = acme.execute(wf, timeout=10)
    public = make_runner(execute_tasks=False)
    [entry] = entries(public)
    assert (entry.action, entry.target, entry.tenant) == ("run.start", result.execution_id, "acme")
    assert entries(public, tenant="public") == []
    assert len(entries(public, tenant="acme")) == 1


def test_rows_cannot_be_changed_or_deleted(runner: DefaultRunner) -> None:
    runner.record_audit("run.cancel", "some-run", actor=ALICE)
    engine = runner.store.engine
    for statement in (
        update(audit_log).values(outcome="forged"),
        delete(audit_log),
        text("DELETE FROM audit_log WHERE id > 0"),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    [entry] = entries(runner)
    assert (entry.outcome, entry.target) == ("ok", "some-run")


def test_pages_newest_first_with_filters(runner: DefaultRunner) -> None:
    for i in range(25):
        action = "run.cancel" if i % 2 else "package.register"
        runner.record_audit(action, f"t{i:02d}", actor=ALICE)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = runner.list_audit(limit=10, cursor=cursor)
        pages += 1
        seen += [e.target for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == [f"t{i:02d}" for i in reversed(range(25))]

    cancels = runner.list_audit(action="run.cancel", limit=100).items
    assert [e.target for e in cancels] == [f"t{i:02d}" for i in reversed(range(1, 25, 2))]
    family = runner.list_audit(action="run.*", limit=100).items
    assert family == cancels
    assert runner.list_audit(action="run", limit=100).items == []

    later = time.time() + 3600
    assert runner.list_audit(since=later).items == []
    assert len(runner.list_audit(until=later, limit=1000).items) == 25
    exactly = runner.list_audit(limit=25)
    assert len(exactly.items) == 25 and exactly.next_cursor is None

    for bad in ("nonsense", "W10", "e30"):
        with pytest.raises(RequestError) as refused:
            runner.list_audit(cursor=bad)
        assert refused.value.field == "cursor"
    for limit in (0, 1001, -1):
        with pytest.raises(RequestError):
            runner.list_audit(limit=limit)


def test_export_formats(runner: DefaultRunner) -> None:
    runner.record_audit("run.start", "r1", detail={"workflow": "etl"}, actor=ALICE)
    runner.record_audit("run.cancel", 'r2, "quoted"\nnext line', "boom, failed", actor=ALICE)
    listed = [e.to_dict() for e in entries(runner)]

    lines = list(runner.export_audit("jsonl"))
    assert all(line.endswith("\n") for line in lines)
    assert [json.loads(line) for line in lines] == listed
    assert listed[0]["at"].endswith("Z") and listed[1]["detail"] == {"workflow": "etl"}

    text_csv = "".join(runner.export_audit("csv"))
    rows = list(csv.DictReader(io.StringIO(text_csv)))
    assert [r["target"] for r in rows] == ['r2, "quoted"\nnext line', "r1"]
    assert rows[0]["outcome"] == "boom, failed" and rows[0]["detail"] == ""
    assert json.loads(rows[1]["detail"]) == {"workflow": "etl"}
    assert rows[1]["actor"] == "key:k-1 (alice)" and rows[1]["client"] == "10.0.0.7"
    assert list(rows[0]) == list(listed[0])

    only = [json.loads(line) for line in runner.export_audit("jsonl", action="run.start")]
    assert [o["target"] for o in only] == ["r1"]
    with pytest.raises(RequestError):
        list(runner.export_audit("xml"))  # type: ignore[arg-type]


def test_set_actor_for_middleware(runner: DefaultRunner) -> None:
    token = set_actor(ALICE)
    try:
        assert current_actor() is ALICE
        runner.record_audit("key.create", "x")
    finally:
        reset_actor(token)
    assert current_actor() is None
    assert entries(runner)[0].actor == ALICE.name
    runner.record_audit("key.create", "y")  # no actor: the local user
    assert entries(runner)[0].actor.startswith("local:")
