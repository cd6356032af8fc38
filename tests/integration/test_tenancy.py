"""Multi-tenancy (DESIGN.md §4 "Namespaces" and "Multi-tenancy"), on SQLite and PostgreSQL.

A tenant is a PostgreSQL schema (every connection's ``search_path`` pinned to it) or a SQLite
file of its own beside the given one. One tenant sees nothing of another: not its packages,
not its workflows, not its runs — and cannot act on them. Task namespaces carry the tenant.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import (
    Context,
    DefaultRunner,
    ExecutionNotFoundError,
    StoreError,
    WorkflowNotFoundError,
    current_task,
    task,
    workflow,
)
from cloacina.model.workflow import WorkflowCatalog
from cloacina.store import open_store

pytestmark = pytest.mark.timeout(90)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

PACKAGE_FLOW = """\
import os

from cloacina import Context, current_task, packaged_workflow, task


@packaged_workflow(name="FLOW", package="PKG")
class flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        info = current_task()
        assert info is not None
        context.insert("namespace", info.namespace)
        context.insert("pid", os.getpid())
"""


def schema_tables(url: str) -> dict[str, set[str]]:
    """Tables per schema of a PostgreSQL database (system schemas left out)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    out: dict[str, set[str]] = {}
    for schema, table in rows:
        out.setdefault(schema, set()).add(table)
    return out


def schemata(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {r[0] for r in rows}


def sqlite_file(url: str, tenant: str) -> Path:
    base = Path(url.removeprefix("sqlite:///"))
    return base if tenant == "public" else base.with_name(f"{base.stem}.{tenant}{base.suffix}")


def run_ids_in_sqlite(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM workflow_executions")}


# ---- packages -------------------------------------------------------------------------------
def test_a_tenants_packages_are_invisible_to_another(
    tmp_path: Path,
    db_url: str,
    make_runner: RunnerFactory,
    make_package: PackageFactory,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    pkg, flow = f"tenant_pkg_{suffix}", f"tenant_flow_{suffix}"
    source = PACKAGE_FLOW.replace("FLOW", flow).replace("PKG", pkg)
    data = make_package(
        tmp_path,
        pkg,
        "1.0.0",
        {f"{pkg}/__init__.py": "", f"{pkg}/flows.py": source},
        [f"{pkg}.flows"],
    )

    # Empty catalogs of in-process workflows: list_workflows shows packaged workflows only.
    acme = make_runner(tenant="acme", workflows=WorkflowCatalog(), stale_claim_threshold=1.0)
    globex = make_runner(tenant="globex", workflows=WorkflowCatalog(), stale_claim_threshold=1.0)
    package_id = acme.register_workflow(data)

    assert [(p.id, p.package) for p in acme.list_packages()] == [(package_id, pkg)]
    assert [wf.name for wf in acme.list_workflows()] == [flow]
    assert globex.list_packages() == []
    assert globex.list_workflows() == []
    with pytest.raises(WorkflowNotFoundError):
        globex.execute(flow, timeout=10)
    with pytest.raises(WorkflowNotFoundError):
        globex.schedule_workflow(flow)
    # Another runner of the same tenant sees it; one of the default tenant does not.
    acme_too = make_runner(tenant="acme", workflows=WorkflowCatalog())
    assert [p.id for p in acme_too.list_packages()] == [package_id]
    public = make_runner(workflows=WorkflowCatalog())
    assert public.list_packages() == []

    result = acme.execute(flow, timeout=30)
    assert result.status == "completed", result.error
    assert result.tenant == "acme"
    assert result.final_context["namespace"] == f"acme::{pkg}::{flow}::hello"
    assert globex.list_executions() == []
    with pytest.raises(ExecutionNotFoundError):
        globex.get_execution(result.execution_id)

    # Registering the same bytes for globex is a package of globex's own.
    globex_id = globex.register_workflow(data)
    assert [p.id for p in globex.list_packages()] == [globex_id]
    other = globex.execute(flow, timeout=30)
    assert other.status == "completed", other.error
    assert other.final_context["namespace"] == f"globex::{pkg}::{flow}::hello"
    assert [p.id for p in acme.list_packages()] == [package_id]


# ---- executions -----------------------------------------------------------------------------
def test_a_tenants_executions_are_invisible_and_untouchable_to_another(
    db_url: str, make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("tenant_runs")

    @workflow(name=wf_name)
    class TenantRuns:
        @task
        def only(context: Context) -> None:
            context.insert("ran", True)

    # Submit-only: acme's run stays running (no acme worker), so there is something to cancel.
    acme = make_runner(tenant="acme", execute_tasks=False)
    globex = make_runner(tenant="globex")  # a worker of globex: must not run acme's task
    public = make_runner()
    eid = acme.schedule_workflow(wf_name)

    for outsider in (globex, public):
        with pytest.raises(ExecutionNotFoundError):
            outsider.get_execution(eid)
        assert outsider.list_executions() == []
        assert outsider.list_executions(workflow_name=wf_name, status="running") == []
        with pytest.raises(ExecutionNotFoundError):
            outsider.cancel(eid)
        with pytest.raises(ExecutionNotFoundError):
            outsider.pause(eid)
        with pytest.raises(ExecutionNotFoundError):
            outsider.resume(eid)
        with pytest.raises(ExecutionNotFoundError):
            outsider.wait(eid, timeout=1)

    # Untouched: still running, its task still waiting for an acme worker.
    view = acme.get_execution(eid)
    assert view.status == "running"
    assert str(view.tasks["only"].status) == "ready"
    assert [r.execution_id for r in acme.list_executions()] == [eid]
    acme.pause(eid)
    assert acme.get_execution(eid).status == "paused"
    acme.resume(eid)
    worker = make_runner(tenant="acme")
    assert worker.wait(eid, timeout=20).status == "completed"
    assert globex.list_executions() == []

    # And the other way round: globex's own run is globex's alone.
    theirs = globex.execute(wf_name, timeout=20)
    assert theirs.status == "completed" and theirs.tenant == "globex"
    with pytest.raises(ExecutionNotFoundError):
        acme.get_execution(theirs.execution_id)
    with pytest.raises(ExecutionNotFoundError):
        acme.cancel(theirs.execution_id)
    assert [r.execution_id for r in acme.list_executions()] == [eid]


def test_embedded_workflows_run_per_tenant_with_its_namespace(
    backend: str, db_url: str, make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("tenant_ns")

    @workflow(name=wf_name)
    class TenantNs:
        @task
        def probe(context: Context) -> None:
            info = current_task()
            assert info is not None
            context.insert("namespace", info.namespace)

        @task(dependencies=[probe])
        def after(context: Context) -> None:
            info = current_task()
            assert info is not None
            context.insert("after", info.namespace)

    results = {}
    runners = {t: make_runner(tenant=t) for t in ("acme", "globex", "public")}
    for tenant, runner in runners.items():
        results[tenant] = runner.execute(wf_name, timeout=20)
    for tenant, result in results.items():
        assert result.status == "completed", result.error
        assert result.tenant == tenant
        assert result.package == "embedded"
        assert result.final_context == {
            "namespace": f"{tenant}::embedded::{wf_name}::probe",
            "after": f"{tenant}::embedded::{wf_name}::after",
        }
        # Each run lives in its tenant's database only.
        seen = {r.execution_id for r in runners[tenant].list_executions()}
        assert seen == {result.execution_id}

    if backend == "postgres":
        tables = schema_tables(db_url)
        for tenant in ("acme", "globex", "public"):
            assert {"workflow_executions", "task_executions", "alembic_version"} <= tables[tenant]
    else:
        for tenant, result in results.items():
            assert run_ids_in_sqlite(sqlite_file(db_url, tenant)) == {result.execution_id}


# ---- where a tenant lives -------------------------------------------------------------------
def test_postgres_tenant_is_a_schema_with_a_pinned_search_path(postgres_url: str) -> None:
    acme = DefaultRunner(postgres_url, tenant="acme", execute_tasks=False)
    globex = DefaultRunner(postgres_url, tenant="globex", execute_tasks=False)
    try:
        assert {"acme", "globex"} <= schemata(postgres_url)
        tables = schema_tables(postgres_url)
        assert "workflow_executions" in tables["acme"] and "workflow_executions" in tables["globex"]
        assert "public" not in tables  # nothing of a tenant leaks into the default schema

        for runner, schema in ((acme, "acme"), (globex, "globex")):
            store: Any = runner.store  # a PostgresStore
            raw = store.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("SELECT current_schema(), current_setting('search_path')")
                assert cur.fetchone() == (schema, schema)
                cur.close()
            finally:
                raw.close()
    finally:
        acme.shutdown()
        globex.shutdown()


def test_sqlite_tenant_is_a_file_of_its_own(sqlite_url: str) -> None:
    with DefaultRunner(sqlite_url, tenant="acme", execute_tasks=False) as acme:
        store: Any = acme.store
        assert Path(store.path) == sqlite_file(sqlite_url, "acme")
    assert sqlite_file(sqlite_url, "acme").is_file()
    assert not sqlite_file(sqlite_url, "public").exists()  # the default tenant's file: unused


INVALID_TENANTS = [
    pytest.param("Acme;drop", id="injection"),
    pytest.param("Acme", id="upper-case"),
    pytest.param("acme corp", id="space"),
    pytest.param("acme-corp", id="dash"),
    pytest.param("../acme", id="path"),
    pytest.param("", id="empty"),
    pytest.param("a" * 64, id="too-long"),
    pytest.param("1acme", id="digit-first"),
    pytest.param("pg_x", id="pg-reserved"),
    pytest.param("information_schema", id="information-schema"),
]


@pytest.mark.parametrize("tenant", INVALID_TENANTS)
def test_invalid_tenant_name_is_refused(tenant: str, backend: str, db_url: str) -> None:
    before = schemata(db_url) if backend == "postgres" else set()
    with pytest.raises(StoreError, match="tenant") as caught:
        DefaultRunner(db_url, tenant=tenant, execute_tasks=False)
    assert repr(tenant) in str(caught.value)
    with pytest.raises(StoreError):
        open_store(db_url, tenant=tenant)
    if backend == "postgres":
        assert schemata(db_url) == before  # no schema made
    else:
        assert [p.name for p in Path(db_url.removeprefix("sqlite:///")).parent.iterdir()] == []
        # (no file made either)


def test_valid_tenant_names_are_accepted(db_url: str) -> None:
    for tenant in ("a", "_x", "acme_2", "a" * 63):
        with DefaultRunner(db_url, tenant=tenant, execute_tasks=False) as runner:
            assert runner.list_executions() == []
            assert runner.tenant == tenant


def test_postgres_connection_without_its_tenant_schema_fails_closed(
    postgres_url: str, name: Callable[[str], str]
) -> None:
    """A tenant's connection never falls back to another schema: with its schema gone, a new
    connection is refused rather than reading the default tenant's runs."""
    import psycopg

    wf_name = name("fail_closed")

    @workflow(name=wf_name)
    class FailClosed:
        @task
        def only(context: Context) -> None:
            pass

    with (
        DefaultRunner(postgres_url, execute_tasks=False) as public,
        DefaultRunner(postgres_url, tenant="acme", execute_tasks=False) as acme,
    ):
        public_run = public.schedule_workflow(wf_name)
        assert acme.list_executions() == []
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute('DROP SCHEMA "acme" CASCADE')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError, match="not pinned to schema 'acme'"):
            acme.list_executions()
        with pytest.raises(StoreError):
            acme.get_execution(public_run)
        assert [r.execution_id for r in public.list_executions()] == [public_run]
