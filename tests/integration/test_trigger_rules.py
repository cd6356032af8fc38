"""Trigger rules (DESIGN.md §4): status rules and context conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cloacina import Context, DefaultRunner, TaskStatus, task, workflow
from cloacina.rules import all_of, any_of, context_value, none_failed, none_of, one_failed


def _statuses(result: Any) -> dict[str, str]:
    return {tid: str(r.status) for tid, r in result.tasks.items()}


def test_all_done_runs_after_failed_dependency(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    ran: list[str] = []
    wf_name = name("all_done")

    @workflow(name=wf_name)
    class AllDone:
        @task
        def ok(context: Context) -> None:
            context.insert("ok", True)

        @task
        def broken(context: Context) -> None:
            raise RuntimeError("broken")

        @task(dependencies=[ok, broken], trigger_rule="all_done")
        def cleanup(context: Context) -> None:
            ran.append("cleanup")
            context.insert("saw_ok", context.get("ok"))

        @task(dependencies=[ok, broken])
        def strict(context: Context) -> None:
            ran.append("strict")

    result = runner.execute(wf_name)

    assert ran == ["cleanup"]
    assert _statuses(result) == {
        "ok": "completed",
        "broken": "failed",
        "cleanup": "completed",
        "strict": "skipped",
    }
    # A failed dependency contributes no output; the completed one does.
    assert result.final_context == {"ok": True, "saw_ok": True}
    assert result.status == "failed"  # a task failed, even though cleanup ran


def test_all_done_waits_for_every_dependency(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("all_done_wait")

    @workflow(name=wf_name)
    class AllDoneWait:
        @task
        def fast(context: Context) -> None:
            context.insert("fast", 1)

        @task
        async def slow(context: Context) -> None:
            await asyncio.sleep(0.2)
            context.insert("slow", 1)

        @task(dependencies=[fast, slow], trigger_rule="all_done")
        def after(context: Context) -> None:
            context.insert("saw", sorted(k for k in context if k != "saw"))

    result = runner.execute(wf_name)

    assert result.status == "completed"
    assert result.final_context["saw"] == ["fast", "slow"]


def test_one_failed_runs_when_a_dependency_failed(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("one_failed_yes")

    @workflow(name=wf_name)
    class OneFailedYes:
        @task
        def good(context: Context) -> None:
            context.insert("good", 1)

        @task
        def bad(context: Context) -> None:
            raise RuntimeError("bad")

        @task(dependencies=[good, bad], trigger_rule=one_failed())
        def alert(context: Context) -> None:
            context.insert("alerted", True)

    result = runner.execute(wf_name)

    assert result.tasks["alert"].status == TaskStatus.COMPLETED
    assert result.final_context == {"good": 1, "alerted": True}
    assert result.status == "failed"


def test_one_failed_skipped_when_nothing_failed(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    ran: list[str] = []
    wf_name = name("one_failed_no")

    @workflow(name=wf_name)
    class OneFailedNo:
        @task
        def good(context: Context) -> None:
            context.insert("good", 1)

        @task
        def also_good(context: Context) -> None:
            context.insert("also_good", 1)

        @task(dependencies=[good, also_good], trigger_rule="one_failed")
        def alert(context: Context) -> None:
            ran.append("alert")

        @task(dependencies=[alert])
        def after_alert(context: Context) -> None:
            ran.append("after_alert")

    result = runner.execute(wf_name)

    assert ran == []
    assert result.status == "completed"
    assert result.tasks["alert"].status == TaskStatus.SKIPPED
    assert result.tasks["alert"].skip_reason is not None
    assert "no dependency failed" in result.tasks["alert"].skip_reason
    assert result.tasks["after_alert"].status == TaskStatus.SKIPPED


def test_none_failed_runs_after_skipped_but_not_after_failed(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    ran: list[str] = []
    wf_name = name("none_failed")

    @workflow(name=wf_name)
    class NoneFailed:
        @task
        def ok(context: Context) -> None:
            context.insert("ok", True)

        @task(trigger_rule=context_value("run_optional", "==", True))
        def optional(context: Context) -> None:
            ran.append("optional")

        @task
        def bad(context: Context) -> None:
            raise RuntimeError("bad")

        @task(dependencies=[ok, optional], trigger_rule=none_failed())
        def tolerant(context: Context) -> None:
            ran.append("tolerant")

        @task(dependencies=[ok, optional])
        def strict(context: Context) -> None:
            ran.append("strict")

        @task(dependencies=[ok, bad], trigger_rule="none_failed")
        def tolerant_of_failure(context: Context) -> None:
            ran.append("tolerant_of_failure")

    result = runner.execute(wf_name, {"run_optional": False})

    assert sorted(ran) == ["tolerant"]
    assert _statuses(result) == {
        "ok": "completed",
        "optional": "skipped",
        "bad": "failed",
        "tolerant": "completed",
        "strict": "skipped",
        "tolerant_of_failure": "skipped",
    }
    assert "failed" in (result.tasks["tolerant_of_failure"].skip_reason or "")


def test_context_condition_false_skips_task_and_downstream(
    runner: DefaultRunner, name: Callable[[str], str], events: Callable[..., list[str]]
) -> None:
    ran: list[str] = []
    wf_name = name("condition")

    @workflow(name=wf_name)
    class Condition:
        @task
        def decide(context: Context) -> None:
            context.insert("mode", "fast")
            context.insert("size", 10)

        @task(dependencies=[decide], trigger_rule=context_value("mode", "==", "fast"))
        def fast_path(context: Context) -> None:
            ran.append("fast_path")
            context.insert("path", "fast")

        @task(dependencies=[decide], trigger_rule=context_value("mode", "==", "slow"))
        def slow_path(context: Context) -> None:
            ran.append("slow_path")

        @task(dependencies=[slow_path])
        def after_slow(context: Context) -> None:
            ran.append("after_slow")

        @task(dependencies=[after_slow])
        def after_after_slow(context: Context) -> None:
            ran.append("after_after_slow")

        @task(dependencies=[fast_path])
        def after_fast(context: Context) -> None:
            ran.append("after_fast")

    result = runner.execute(wf_name)

    assert sorted(ran) == ["after_fast", "fast_path"]
    assert result.status == "completed"  # skipped tasks do not fail a run
    assert _statuses(result) == {
        "decide": "completed",
        "fast_path": "completed",
        "slow_path": "skipped",
        "after_slow": "skipped",
        "after_after_slow": "skipped",
        "after_fast": "completed",
    }
    reason = result.tasks["slow_path"].skip_reason or ""
    assert "mode" in reason and "slow" in reason
    assert "skipped" in (result.tasks["after_slow"].skip_reason or "")
    assert result.final_context == {"mode": "fast", "size": 10, "path": "fast"}
    assert "task_skipped" in events(runner, result.execution_id, "slow_path")


def test_condition_on_root_reads_input_context(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("root_condition")

    @workflow(name=wf_name)
    class RootCondition:
        @task(trigger_rule=context_value("flag", "exists"))
        def gated(context: Context) -> None:
            context.insert("gated_ran", True)

        @task(dependencies=[gated])
        def after(context: Context) -> None:
            context.insert("after_ran", True)

    skipped = runner.execute(wf_name, {"other": 1})
    ran = runner.execute(wf_name, {"flag": None})

    assert skipped.status == "completed"
    assert skipped.tasks["gated"].status == TaskStatus.SKIPPED
    assert skipped.tasks["after"].status == TaskStatus.SKIPPED
    assert ran.tasks["gated"].status == TaskStatus.COMPLETED
    assert ran.tasks["after"].status == TaskStatus.COMPLETED
    assert ran.final_context == {"flag": None, "gated_ran": True, "after_ran": True}


def test_combined_conditions(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("combined")

    @workflow(name=wf_name)
    class Combined:
        @task
        def decide(context: Context) -> None:
            context.insert("size", 10)
            context.insert("region", "eu")

        @task(
            dependencies=[decide],
            trigger_rule=all_of(
                context_value("size", ">=", 10), context_value("region", "in", ["eu", "us"])
            ),
        )
        def all_true(context: Context) -> None:
            context.insert("all_true", True)

        @task(
            dependencies=[decide],
            trigger_rule=all_of(
                context_value("size", ">", 10), context_value("region", "==", "eu")
            ),
        )
        def all_one_false(context: Context) -> None:
            context.insert("all_one_false", True)

        @task(
            dependencies=[decide],
            trigger_rule=any_of(context_value("size", "<", 5), context_value("region", "==", "eu")),
        )
        def any_one_true(context: Context) -> None:
            context.insert("any_one_true", True)

        @task(
            dependencies=[decide],
            trigger_rule=any_of(context_value("size", "<", 5), context_value("missing", "exists")),
        )
        def any_none_true(context: Context) -> None:
            context.insert("any_none_true", True)

        @task(
            dependencies=[decide],
            trigger_rule=none_of(
                context_value("region", "==", "us"), context_value("size", "!=", 10)
            ),
        )
        def none_true(context: Context) -> None:
            context.insert("none_true", True)

        @task(
            dependencies=[decide],
            trigger_rule=none_of(context_value("region", "not_in", ["us"])),
        )
        def none_one_true(context: Context) -> None:
            context.insert("none_one_true", True)

    result = runner.execute(wf_name)

    assert result.status == "completed"
    assert _statuses(result) == {
        "decide": "completed",
        "all_true": "completed",
        "all_one_false": "skipped",
        "any_one_true": "completed",
        "any_none_true": "skipped",
        "none_true": "completed",
        "none_one_true": "skipped",
    }
    assert result.final_context == {
        "size": 10,
        "region": "eu",
        "all_true": True,
        "any_one_true": True,
        "none_true": True,
    }


def test_condition_true_but_dependency_failed_is_skipped(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """A rule made only of conditions also requires all_success (DESIGN.md §4)."""
    ran: list[str] = []
    wf_name = name("condition_failed_dep")

    @workflow(name=wf_name)
    class ConditionFailedDep:
        @task
        def bad(context: Context) -> None:
            raise RuntimeError("bad")

        @task(dependencies=[bad], trigger_rule=context_value("x", "not_exists"))
        def gated(context: Context) -> None:
            ran.append("gated")

    result = runner.execute(wf_name)

    assert ran == []
    assert result.status == "failed"
    assert result.tasks["gated"].status == TaskStatus.SKIPPED


def test_all_done_runs_after_skipped_dependency(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("all_done_skipped")

    @workflow(name=wf_name)
    class AllDoneSkipped:
        @task(trigger_rule=context_value("go", "==", True))
        def gated(context: Context) -> None:
            context.insert("gated", True)

        @task(dependencies=[gated])
        def after_gated(context: Context) -> None:
            context.insert("after_gated", True)

        @task(dependencies=[after_gated], trigger_rule="all_done")
        def finally_(context: Context) -> None:
            context.insert("finally", True)

    result = runner.execute(wf_name, {"go": False})

    assert result.status == "completed"
    assert _statuses(result) == {
        "gated": "skipped",
        "after_gated": "skipped",
        "finally_": "completed",
    }
    assert result.final_context == {"finally": True}


def test_context_condition_combined_with_all_done(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """A status rule in the combination replaces the implied all_success: the task runs after
    a failed dependency when the condition holds on the surviving context."""
    wf_name = name("cond_all_done")

    @workflow(name=wf_name)
    class CondAllDone:
        @task
        def ok(context: Context) -> None:
            context.insert("notify", True)

        @task
        def bad(context: Context) -> None:
            raise RuntimeError("bad")

        @task(
            dependencies=[ok, bad],
            trigger_rule=all_of("all_done", context_value("notify", "==", True)),
        )
        def notify(context: Context) -> None:
            context.insert("notified", True)

        @task(
            dependencies=[ok, bad],
            trigger_rule=all_of("all_done", context_value("notify", "==", False)),
        )
        def silent(context: Context) -> None:
            context.insert("silent", True)

    result = runner.execute(wf_name)

    assert result.tasks["notify"].status == TaskStatus.COMPLETED
    assert result.tasks["silent"].status == TaskStatus.SKIPPED
    assert result.status == "failed"
