"""The service reads behind the web UI's Workers and Audit pages, on real SQLite and
PostgreSQL: the audit log filtered by actor and outcome (in its pages and its export), and
the running tasks each worker holds."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable

import httpx
import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import RequestError
from cloacina.model.status import TaskStatus
from cloacina.service.audit import Actor, acting_as

pytestmark = pytest.mark.timeout(90)

ALICE = Actor.for_key("k-1", "alice_100%")
BOB = Actor.for_key("k-2", "bob")


def test_audit_by_actor_and_outcome(runner: DefaultRunner) -> None:
    with acting_as(ALICE):
        runner.record_audit("run.cancel", "r-1")
        runner.record_audit("run.cancel", "r-2", "no workflow execution with id 'r-2'")
    with acting_as(BOB):
        runner.record_audit("run.pause", "r-3")

    def targets(**filters: str) -> list[str]:
        return [e.target for e in runner.list_audit(**filters).items]  # type: ignore[arg-type]

    assert targets() == ["r-3", "r-2", "r-1"]
    assert targets(actor="alice") == ["r-2", "r-1"]
    assert targets(actor="100%") == ["r-2", "r-1"]  # the actor's own characters, no pattern
    assert targets(actor="%") == ["r-2", "r-1"]
    assert targets(actor="_") == ["r-2", "r-1"]  # alice_100%: '_' is literal, bob has none
    assert targets(actor="k-2") == ["r-3"]
    assert targets(outcome="ok") == ["r-3", "r-1"]
    assert targets(outcome="failed") == ["r-2"]
    assert targets(actor="alice", outcome="ok", action="run.*") == ["r-1"]
    with pytest.raises(RequestError, match="outcome must be ok or failed"):
        runner.list_audit(outcome="bad")

    # Paged one by one, the filters hold on every page.
    first = runner.list_audit(actor="alice", limit=1)
    assert [e.target for e in first.items] == ["r-2"] and first.next_cursor
    second = runner.list_audit(actor="alice", limit=1, cursor=first.next_cursor)
    assert [e.target for e in second.items] == ["r-1"] and second.next_cursor is None

    lines = [json.loads(x) for x in runner.export_audit("jsonl", actor="alice", outcome="failed")]
    assert [x["target"] for x in lines] == ["r-2"]
    text = "".join(runner.export_audit("csv", outcome="ok"))
    assert [r["target"] for r in csv.DictReader(io.StringIO(text))] == ["r-3", "r-1"]


def test_worker_tasks(
    runner: DefaultRunner, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    flow = name("held")

    @workflow(name=flow)
    class held:
        @task()
        async def nap(context: Context) -> None:
            await asyncio.sleep(30)

        @task()
        async def doze(context: Context) -> None:
            await asyncio.sleep(30)

    assert runner.worker_tasks() == {}
    execution_id = runner.schedule_workflow(flow, {})
    until(
        lambda: all(
            t.status == TaskStatus.RUNNING
            for t in runner.get_execution(execution_id).tasks.values()
        ),
        what="both tasks running",
    )
    (worker,) = runner.list_workers()
    assert runner.worker_tasks() == {worker.id: [(execution_id, "doze"), (execution_id, "nap")]}
    assert worker.running_tasks == 2
    runner.cancel(execution_id)
    until(lambda: runner.worker_tasks() == {}, what="the worker holds nothing")


def test_actor_and_outcome_over_http_client_and_cli(sqlite_url: str) -> None:
    """The same filters through every face: the API, ``cloacina.Client`` and the CLI (on
    the database, and through the server)."""
    from click.testing import CliRunner

    from cloacina import Client
    from cloacina.cli import cli

    from .server_support import live_server

    with live_server(sqlite_url) as live:
        primary = live.api.state.primary
        with acting_as(ALICE):
            primary.record_audit("run.cancel", "r-1")
            primary.record_audit("run.cancel", "r-2", "refused")
        with acting_as(BOB):
            primary.record_audit("run.pause", "r-3")
        admin = live.api.keys["admin"]

        answer = httpx.get(
            f"{live.base}/api/v1/audit",
            params={"actor": "alice", "outcome": "failed"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert answer.status_code == 200, answer.text
        assert [i["target"] for i in answer.json()["items"]] == ["r-2"]
        bad = httpx.get(
            f"{live.base}/api/v1/audit",
            params={"outcome": "maybe"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert bad.status_code == 400 and "outcome" in bad.text

        with Client(live.base, api_key=admin) as client:
            assert [e.target for e in client.list_audit(actor="k-2").items] == ["r-3"]
            assert [e.target for e in client.iter_audit(outcome="ok")] == ["r-3", "r-1"]
            text = "".join(client.export_audit("csv", actor="alice", outcome="ok"))
            assert [r["target"] for r in csv.DictReader(io.StringIO(text))] == ["r-1"]

        invoke = CliRunner().invoke
        for where in (["--db", sqlite_url], ["--server", live.base, "--api-key", admin]):
            listed = invoke(
                cli, ["audit", "list", "--actor", "alice", "--outcome", "ok", "--json", *where]
            )
            assert listed.exit_code == 0, listed.output
            assert [i["target"] for i in json.loads(listed.output)["items"]] == ["r-1"]
            exported = invoke(cli, ["audit", "export", "--outcome", "failed", *where])
            assert exported.exit_code == 0, exported.output
            assert [json.loads(x)["target"] for x in exported.output.splitlines()] == ["r-2"]
