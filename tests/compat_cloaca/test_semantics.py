"""The cloaca behaviours the compatibility layer carries that cloaca's own suite does not
assert through a runner (shared/cloaca-compat.md §2.5, §5), on a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloacina.compat.cloaca as cloaca
from cloacina import Context as CloacinaContext
from cloacina import DefaultRunner as CloacinaRunner
from cloacina import task, workflow


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[cloaca.DefaultRunner]:
    r = cloaca.DefaultRunner(f"sqlite://{tmp_path / 'cloaca.db'}")  # cloaca's URL form
    yield r
    r.shutdown()


def test_a_task_returning_none_keeps_its_input(runner: cloaca.DefaultRunner) -> None:
    with cloaca.WorkflowBuilder("sem_none_return"):

        @cloaca.task(id="t1")
        def t1(ctx: Any) -> None:
            ctx.set("from_t1", 1)  # discarded: the task returns None

        @cloaca.task(id="t2", dependencies=["t1"])
        def t2(ctx: Any) -> Any:
            ctx.set("saw_from_t1", "from_t1" in ctx)
            return ctx

    result = runner.execute("sem_none_return", cloaca.Context({"seed": 7}))
    assert result.status == "Completed"
    assert result.final_context.to_dict() == {"seed": 7, "saw_from_t1": False}


def test_dependency_outputs_merge_lists_and_objects(runner: cloaca.DefaultRunner) -> None:
    with cloaca.WorkflowBuilder("sem_merge"):

        @cloaca.task(id="a")
        def a(ctx: Any) -> Any:
            ctx.update_from_dict({"lst": ["a"], "obj": {"a": 1, "shared": "a"}, "x": "a"})
            return ctx

        @cloaca.task(id="b")
        def b(ctx: Any) -> Any:
            ctx.update_from_dict({"lst": ["b", "a"], "obj": {"b": 1, "shared": "b"}, "x": "b"})
            return ctx

        @cloaca.task(id="c", dependencies=["a", "b"])
        def c(ctx: Any) -> Any:
            return ctx

    final = runner.execute("sem_merge", cloaca.Context({})).final_context
    assert final.get("lst") == ["a", "b"]  # concatenated without duplicates
    assert final.get("obj") == {"a": 1, "shared": "b", "b": 1}
    assert final.get("x") == "b"


def test_final_context_is_the_last_completed_tasks_output(runner: cloaca.DefaultRunner) -> None:
    with cloaca.WorkflowBuilder("sem_final"):

        @cloaca.task(id="first")
        def first(ctx: Any) -> Any:
            ctx.set("first", True)
            return ctx

        @cloaca.task(id="replace", dependencies=["first"])
        def replace(ctx: Any) -> Any:
            return cloaca.Context({"only": 1})  # a new context replaces the input

    result = runner.execute("sem_final", cloaca.Context({"input": 1}))
    assert result.final_context.to_dict() == {"only": 1}


def test_a_failed_task_runs_its_dependents_and_fails_the_run(
    runner: cloaca.DefaultRunner,
) -> None:
    failures: list[tuple[str, str, dict[str, Any]]] = []

    def on_failure(task_id: str, message: str, ctx: Any) -> None:
        failures.append((task_id, message, ctx.to_dict()))

    with cloaca.WorkflowBuilder("sem_failure"):

        @cloaca.task(
            id="flaky",
            retry_attempts=3,
            retry_delay_ms=10,
            retry_jitter=False,
            on_failure=on_failure,
        )
        def flaky(ctx: Any) -> Any:
            ctx.set("mutated", True)
            raise RuntimeError("boom")

        @cloaca.task(id="after", dependencies=["flaky"])
        def after(ctx: Any) -> Any:
            ctx.set("input_size", len(ctx))  # a failed dependency contributes nothing
            return ctx

    result = runner.execute("sem_failure", cloaca.Context({"k": 1}))
    assert result.status == "Failed"
    assert result.error_message == "1 task(s) failed, 1 completed, 0 skipped"
    assert result.final_context.to_dict() == {"input_size": 0}
    # Every failed attempt, with the attempt's input (the body's mutation is not there).
    assert failures == [("flaky", "Python task execution failed: RuntimeError: boom", {"k": 1})] * 3


def test_returning_something_else_fails_and_a_lone_failure_keeps_the_input(
    runner: cloaca.DefaultRunner,
) -> None:
    with cloaca.WorkflowBuilder("sem_bad_return"):

        @cloaca.task(id="returns_dict", retry_condition="never")
        def returns_dict(ctx: Any) -> Any:
            return {"not": "a context"}

    result = runner.execute("sem_bad_return", cloaca.Context({"k": 1}))
    assert result.status == "Failed"
    assert result.final_context.to_dict() == {"k": 1}
    attempts = runner.runner.get_execution(result.execution_id).tasks["returns_dict"]
    assert attempts.attempts == 1
    assert "not dict" in (attempts.error or "")


def test_cloacinas_own_api_keeps_its_semantics(tmp_path: Path) -> None:
    """The compat layer changes nothing for ``cloacina.task``: dependencies deep-merge
    (lists replace) and ``final_context`` merges the leaves."""

    @workflow(name="sem_native")
    class sem_native:
        @task(id="a")
        def a(context: CloacinaContext) -> None:
            context.set("lst", ["a"])

        @task(id="b")
        def b(context: CloacinaContext) -> None:
            context.set("lst", ["b"])

        @task(id="c", dependencies=["a", "b"])
        def c(context: CloacinaContext) -> None:
            context.set("c", True)

    with CloacinaRunner(f"sqlite:///{tmp_path / 'native.db'}") as r:
        result = r.execute("sem_native", {})
    assert result.final_context == {"lst": ["b"], "c": True}


def test_with_schema_gives_each_tenant_its_own_schema(postgres_url: str) -> None:
    with cloaca.WorkflowBuilder("sem_tenants"):

        @cloaca.task(id="work")
        def work(ctx: Any) -> Any:
            ctx.set("done", True)
            return ctx

    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    a = cloaca.DefaultRunner.with_schema(url, "tenant_a")
    try:
        b = cloaca.DefaultRunner.with_schema(url, "Tenant_B")  # folded, as PostgreSQL does
        try:
            assert a.execute("sem_tenants", cloaca.Context()).status == "Completed"
            sid = a.register_cron_workflow("sem_tenants", "0 0 * * *", "UTC")
            assert [s["id"] for s in a.list_cron_schedules()] == [sid]
            assert b.list_cron_schedules() == []
            assert len(a.runner.list_executions()) == 1
            assert b.runner.list_executions() == []
            assert (a.runner.tenant, b.runner.tenant) == ("tenant_a", "tenant_b")
        finally:
            b.shutdown()
    finally:
        a.shutdown()


def test_in_memory_and_configured_runners() -> None:
    """``sqlite://:memory:`` (a scratch file, removed at shutdown) and ``with_config``."""
    with cloaca.WorkflowBuilder("sem_memory"):

        @cloaca.task(id="only")
        def only(ctx: Any) -> Any:
            return ctx

    config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=2, scheduler_poll_interval_ms=50)
    runner = cloaca.DefaultRunner.with_config("sqlite://:memory:", config)
    scratch = Path(runner.runner.url.removeprefix("sqlite:///")).parent
    try:
        assert scratch.is_dir()
        assert runner.runner.settings.max_concurrent_tasks == 2
        assert runner.execute("sem_memory", {"k": 1}).final_context.get("k") == 1
    finally:
        runner.shutdown()
    assert not scratch.exists()
    with pytest.raises(ValueError, match="Workflow execution failed"):
        runner.execute("sem_memory", cloaca.Context())
