"""Packaged triggers (DESIGN.md §10): a package's @trigger functions are recorded when it is
registered, polled in the package's own processes, taken over by a new version without a
second row, and removed with the package's last version. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cloacina import DefaultRunner
from cloacina.errors import PackageError
from cloacina.testing import FakeClock

pytestmark = pytest.mark.timeout(120)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

HEADER = "import os\n\nfrom cloacina import Context, packaged_workflow, task, trigger\n"

FLOW = """
POLLS = []


@packaged_workflow(name="trig_flow", package="trig_pkg")
class trig_flow:
    @task(id="work")
    def work(context: Context) -> None:
        context.insert("task_pid", os.getpid())


@trigger(workflow="trig_flow", poll_interval={interval})
def feed():
    POLLS.append(1)
    return {{"poll_pid": os.getpid(), "n": len(POLLS)}}
"""

BROKEN = """

@trigger(workflow="trig_flow", poll_interval=5, name="broken")
def broken():
    raise ValueError("the feed broke")
"""


def sources(body: str) -> dict[str, str]:
    return {"trig_pkg/__init__.py": "", "trig_pkg/flows.py": HEADER + textwrap.dedent(body)}


def triggered_runs(runner: DefaultRunner) -> list[tuple[str, dict[str, Any]]]:
    with runner.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT trigger_name, input_context FROM workflow_executions"
                " WHERE trigger_name IS NOT NULL ORDER BY created_at, id"
            )
        )
        return [(r[0], json.loads(r[1])) for r in rows]


def test_a_package_declares_polls_and_removes_its_triggers(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    until: Callable[..., None],
) -> None:
    clock = FakeClock(datetime(2026, 3, 29, tzinfo=UTC))
    runner = make_package_runner(clock=clock)
    v1 = make_package(
        tmp_path,
        "trig_pkg",
        "1.0.0",
        sources(FLOW.format(interval=5) + BROKEN),
        ["trig_pkg.flows"],
    )
    runner.register_workflow(v1)
    runner.register_workflow(v1)  # again: nothing doubles
    listed = {t.name: t for t in runner.list_triggers()}
    assert set(listed) == {"feed", "broken"}
    feed = listed["feed"]
    assert (feed.source, feed.package, feed.workflow) == (
        "package",
        "trig_pkg",
        "trig_pkg::trig_flow",
    )
    assert feed.poll_interval == 5.0

    # Polled in the package's process; the run it starts executes there too.
    until(lambda: len(triggered_runs(runner)) == 1, timeout=30, what="a packaged trigger's run")
    name, context = triggered_runs(runner)[0]
    assert name == "feed" and context["n"] == 1
    assert context["poll_pid"] != os.getpid(), "the trigger ran in the runner's own process"
    until(lambda: runner.get_trigger("broken").failures == 1, timeout=30)
    error = runner.get_trigger("broken").last_error or ""
    assert "ValueError: the feed broke" in error and "Traceback" in error
    clock.advance(5)
    until(lambda: len(triggered_runs(runner)) == 2, timeout=30, what="the next poll")
    assert triggered_runs(runner)[1][1]["n"] == 2

    # A new version takes the names over: the same rows, its definitions; one it no longer
    # declares goes; a paused one stays paused.
    runner.pause_trigger("feed")
    v2 = make_package(
        tmp_path, "trig_pkg", "2.0.0", sources(FLOW.format(interval=7)), ["trig_pkg.flows"]
    )
    runner.register_workflow(v2)
    (feed,) = runner.list_triggers()
    assert feed.name == "feed" and feed.poll_interval == 7.0 and not feed.enabled

    # Back to 1.0.0's when 2.0.0 goes; none once the last version goes.
    for result in runner.list_executions():
        runner.wait(result.execution_id, timeout=30)
    runner.unregister_workflow("trig_pkg", "2.0.0")
    assert {t.name for t in runner.list_triggers()} == {"feed", "broken"}
    runner.unregister_workflow("trig_pkg", "1.0.0")
    assert runner.list_triggers() == []


def test_a_trigger_for_a_workflow_the_package_lacks_is_refused(
    tmp_path: Path, make_package: PackageFactory
) -> None:
    body = FLOW.format(interval=5).replace('workflow="trig_flow"', 'workflow="elsewhere"')
    with pytest.raises(PackageError, match="'elsewhere', which this package does not define"):
        make_package(tmp_path, "trig_pkg", "1.0.0", sources(body), ["trig_pkg.flows"])
