"""The service layer's queries on real databases (issue 10, item 1): a run's attempts and
events, finding a run by an id prefix, workers, packages with their manifest and archive,
workflows with their graph, pruning, and tenants."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, TaskError, task, workflow
from cloacina.errors import (
    ConflictError,
    ExecutionNotFoundError,
    InvalidTenantNameError,
    PackageNotFoundError,
    RequestError,
    TenantNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.service import tenants
from cloacina.service.databases import (
    display_url,
    head_revision,
    schema_revision,
    tenant_exists,
    upgrade_database,
)

pytestmark = pytest.mark.timeout(120)

RunnerFactory = Callable[..., DefaultRunner]


def test_attempts_events_and_detail_of_a_run_with_retries(
    runner: DefaultRunner, name: Callable[[str], str], fast_retry: Any
) -> None:
    calls = {"n": 0}

    @workflow(name=name("attempts"))
    class flaky:
        @task(retry=fast_retry)
        def shaky(context: Context) -> None:
            calls["n"] += 1
            if calls["n"] < 3:
                raise TaskError(f"boom {calls['n']}")
            context.insert("ok", True)

        @task(dependencies=["shaky"])
        def after(context: Context) -> None:
            pass

    result = runner.execute(flaky, timeout=30)
    assert result.status == "completed", result.error
    eid = result.execution_id

    attempts = runner.get_attempts(eid)
    shaky = [(a.attempt, a.outcome, a.error) for a in attempts if a.task_id == "shaky"]
    assert shaky == [(1, "failed", "boom 1"), (2, "failed", "boom 2"), (3, "completed", None)]
    assert [(a.task_id, a.outcome) for a in attempts if a.task_id == "after"] == [
        ("after", "completed")
    ]
    for a in attempts:
        assert a.execution_id == eid and a.finished_at is not None and a.started_at is not None
        assert a.duration is not None and a.duration >= 0

    events = runner.get_events(eid)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    types = [e.type for e in events]
    assert types[0] == "execution_started" and types[-1] == "execution_completed"
    assert types.count("task_retry_scheduled") == 2
    retry = next(e for e in events if e.type == "task_retry_scheduled")
    assert retry.task_id == "shaky" and retry.attempt == 1 and retry.detail["error"] == "boom 1"
    assert all(e.at.tzinfo is not None for e in events)
    middle = seqs[len(seqs) // 2]
    assert [e.seq for e in runner.get_events(eid, after=middle)] == [s for s in seqs if s > middle]
    assert [e.seq for e in runner.get_events(eid, limit=2)] == seqs[:2]
    with pytest.raises(ExecutionNotFoundError):
        runner.get_events("no-such-run")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_attempts("no-such-run")

    detail = runner.get_execution(eid)
    assert detail.tasks["shaky"].max_attempts == fast_retry.max_attempts
    assert detail.tasks["shaky"].attempts == 3
    assert (detail.tasks_total, detail.tasks_done, detail.tasks_failed) == (2, 2, 0)
    assert detail.input_context == {} and detail.final_context["ok"] is True
    assert detail.created_at is not None and detail.started_at is not None
    assert detail.created_at <= detail.started_at
    assert runner.get_execution_status(eid) == "completed"


def test_a_running_attempt_is_listed(
    runner: DefaultRunner, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    import threading

    release = threading.Event()

    @workflow(name=name("running"))
    class slow:
        @task()
        def hold(context: Context) -> None:
            release.wait(20)

    eid = runner.schedule_workflow(slow)
    try:
        until(lambda: any(a.outcome == "running" for a in runner.get_attempts(eid)))
        [current] = runner.get_attempts(eid)
        assert (current.task_id, current.attempt, current.finished_at) == ("hold", 1, None)
        assert current.worker_id == runner.worker_id
        assert runner.get_execution(eid).tasks["hold"].worker_id == runner.worker_id
    finally:
        release.set()
    assert runner.wait(eid, timeout=20).status == "completed"
    assert [a.outcome for a in runner.get_attempts(eid)] == ["completed"]


def test_find_execution_by_prefix(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    @workflow(name=name("find"))
    class one:
        @task()
        def only(context: Context) -> None:
            pass

    ids = [runner.execute(one, timeout=30).execution_id for _ in range(2)]
    for eid in ids:
        assert runner.find_execution(eid).execution_id == eid
        found = runner.find_execution(f"  {eid[:12]} ")
        assert found.execution_id == eid and "only" in found.tasks
    with pytest.raises(ExecutionNotFoundError, match="no workflow execution with id or id prefix"):
        runner.find_execution("zzzz")
    with pytest.raises(RequestError, match="give an execution id"):
        runner.find_execution("  ")
    twins = [_insert(runner, f"cafe{i}000-0000-4000-8000-000000000000") for i in range(7)]
    with pytest.raises(RequestError, match=r"ambiguous: it matches .* and more; give more"):
        runner.find_execution("cafe")
    assert runner.find_execution("cafe3").execution_id == twins[3]


def _insert(runner: DefaultRunner, execution_id: str) -> str:
    from cloacina.store.records import NewTask

    with runner.store.write() as tx:
        tx.create_execution(
            execution_id,
            tenant="public",
            package="embedded",
            workflow_name="twin",
            workflow_version="v1",
            input_json="{}",
            tasks=[NewTask("only", 0, (), 1)],
            now=time.time(),
        )
    return execution_id


def test_workers_of_a_tenant(make_runner: RunnerFactory) -> None:
    worker = make_runner()
    reader = make_runner(execute_tasks=False)
    [info] = reader.list_workers()
    assert info.id == worker.worker_id and info.state == "running" and info.status == "running"
    assert info.host == worker.host and info.pid > 0 and info.running_tasks == 0
    assert info.started_at <= info.last_heartbeat_at and info.stopped_at is None
    worker.shutdown()
    assert reader.list_workers() == []
    [stopped] = reader.list_workers(include_stopped=True)
    assert stopped.state == "stopped" and stopped.stopped_at is not None


FLOW = """
import os

from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="svc_flow", package="svc_pkg", description="For the service tests")
class svc_flow:
    @task()
    def first(context: Context) -> None:
        context.insert("pid", os.getpid())

    @task(dependencies=["first"])
    def second(context: Context) -> None:
        pass
"""


def test_packages_and_workflows(
    tmp_path: Path, make_package: Callable[..., bytes], make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    data = make_package(
        tmp_path,
        "svc_pkg",
        "1.2.0",
        {"svc_pkg/__init__.py": "", "svc_pkg/flows.py": textwrap.dedent(FLOW)},
        ["svc_pkg.flows"],
    )
    package_id = runner.register_workflow(data)

    detail = runner.get_package("svc_pkg", "1.2.0")
    assert (detail.id, detail.package, detail.version) == (package_id, "svc_pkg", "1.2.0")
    assert detail.workflows == ["svc_flow"] and detail.default and not detail.promoted
    assert detail.registered_at.tzinfo is not None
    assert detail.manifest["package"]["name"] == "svc_pkg"
    assert runner.get_package_archive("svc_pkg", "1.2.0") == data
    with pytest.raises(PackageNotFoundError):
        runner.get_package("svc_pkg", "9.9.9")
    with pytest.raises(PackageNotFoundError):
        runner.get_package_archive("nope", "1.2.0")

    info = runner.describe_workflow("svc_flow")
    assert (info.name, info.package, info.description) == (
        "svc_flow",
        "svc_pkg",
        "For the service tests",
    )
    assert [(t.id, t.dependencies) for t in info.tasks] == [("first", []), ("second", ["first"])]
    assert info in runner.describe_workflows()
    assert runner.describe_workflow("svc_pkg::svc_flow@1.2.0") == info
    with pytest.raises(WorkflowNotFoundError, match="did you mean 'svc_flow'"):
        runner.describe_workflow("svc_flwo")


def test_prune(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    @workflow(name=name("prune"))
    class one:
        @task()
        def only(context: Context) -> None:
            pass

    eid = runner.execute(one, timeout=30).execution_id
    assert runner.count_prunable(3600) == 0
    time.sleep(0.05)
    assert runner.count_prunable(0.01) == 1
    assert runner.prune_executions(0.01) == 1
    with pytest.raises(ExecutionNotFoundError):
        runner.get_execution(eid)


def test_tenants(db_url: str, runner: DefaultRunner) -> None:
    assert [t.name for t in tenants.list_tenants(db_url)] == ["public"]
    assert runner.tenant_names() == ["public"]
    assert tenants.create_tenant(db_url, "svc_acme") is True
    assert tenants.create_tenant(db_url, "svc_acme") is False  # exists: brought up to date
    assert tenant_exists(db_url, "svc_acme")
    assert sorted(runner.tenant_names()) == ["public", "svc_acme"]
    where = tenants.tenant_location(db_url, "svc_acme")
    assert ("svc_acme" in where) and ("password" not in where)
    with pytest.raises(InvalidTenantNameError):
        tenants.create_tenant(db_url, "Bad-Name")
    with pytest.raises(ConflictError, match="refusing to remove the public tenant"):
        tenants.remove_tenant(db_url, "public")
    with pytest.raises(TenantNotFoundError, match="no tenant 'svc_ghost'"):
        tenants.remove_tenant(db_url, "svc_ghost")
    worker = DefaultRunner(db_url, tenant="svc_acme", poll_interval=0.05)
    try:
        with pytest.raises(ConflictError, match="1 running worker"):
            tenants.remove_tenant(db_url, "svc_acme")
    finally:
        worker.shutdown()
    tenants.remove_tenant(db_url, "svc_acme")
    assert not tenant_exists(db_url, "svc_acme")
    assert runner.tenant_names() == ["public"]


def test_schema_revision_and_upgrade(db_url: str, tmp_path: Path) -> None:
    head = head_revision()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert schema_revision(fresh) == (None, f"no database at {str(tmp_path / 'fresh.db')!r}")
    assert upgrade_database(fresh) == (None, head)
    assert schema_revision(fresh) == (head, "up to date")
    assert upgrade_database(fresh) == (head, head)
    DefaultRunner(db_url, execute_tasks=False).shutdown()
    assert schema_revision(db_url) == (head, "up to date")
    shown = display_url("postgresql://someone:s3cret@db.example:5432/runs")
    assert "s3cret" not in shown and "someone" in shown and "db.example" in shown


def test_a_runs_graph_is_the_one_it_was_created_with(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """get_run_graph reads the graph stored with the run, whatever the workflow is now."""
    wf_name = name("graph_of_run")

    @workflow(name=wf_name)
    class first:
        @task
        def a(context: Context) -> None:
            pass

        @task(dependencies=["a"])
        def b(context: Context) -> None:
            pass

        @task(dependencies=["a", "b"])
        def c(context: Context) -> None:
            pass

    result = runner.execute(first, timeout=30)
    graph = runner.get_run_graph(result.execution_id)
    assert graph == {"a": [], "b": ["a"], "c": ["a", "b"]}

    with pytest.raises(ExecutionNotFoundError):
        runner.get_run_graph("00000000-0000-0000-0000-000000000000")
