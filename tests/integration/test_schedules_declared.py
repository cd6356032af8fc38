"""Declared schedules (DESIGN.md §10): ``@workflow(..., schedules=[cron(...)])`` and the same
on ``@packaged_workflow``, created when the workflow's runner starts or the package is
registered, never duplicated, removed with the package, and taken over by a new package
version without a double fire or a gap (FakeClock; SQLite and PostgreSQL)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, cron, task, workflow
from cloacina.errors import WorkflowDefinitionError
from cloacina.model.workflow import catalog
from cloacina.packaging.archive import read_archive
from cloacina.testing import FakeClock

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def make(db_url: str, clock: FakeClock) -> Iterator[Callable[..., DefaultRunner]]:
    runners: list[DefaultRunner] = []

    def build(**kwargs: Any) -> DefaultRunner:
        settings: dict[str, Any] = {
            "poll_interval": 0.05,
            "shutdown_grace": 5.0,
            "heartbeat_interval": 0.2,
            "stale_claim_threshold": 1.0,
            **kwargs,
        }
        runner = DefaultRunner(db_url, clock=clock, **settings)
        runners.append(runner)
        return runner

    yield build
    for runner in reversed(runners):
        runner.shutdown(wait=False)


def fired(runner: DefaultRunner, sid: str) -> list[float]:
    return sorted(f.scheduled_for.timestamp() for f in runner.schedule_history(sid, limit=10000))


def test_embedded_declared_schedules_are_created_once_by_the_runners_that_know_them(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    name: Callable[[str], str],
    until: Callable[..., None],
    request: pytest.FixtureRequest,
) -> None:
    wf_name = name("declared")
    seen: list[dict[str, Any]] = []

    @workflow(
        name=wf_name,
        schedules=[
            cron("0 * * * *", name="hourly", context={"kind": "h"}),
            cron("30 2 * * *", timezone="Europe/Berlin"),
        ],
    )
    class Declared:
        @task()
        def record(context: Context) -> None:
            seen.append(context.to_dict())

    # The catalog is the process's: forget the workflow after the test, or every runner
    # the later tests start would create its schedules in their databases.
    request.addfinalizer(lambda: catalog.remove(wf_name))
    first = make()
    second = make()  # a second runner of the same code: nothing twice
    mine = [s for s in first.list_schedules() if s.workflow == wf_name]
    assert sorted(s.name for s in mine) == [f"{wf_name}:2", f"{wf_name}:hourly"]
    assert {s.source for s in mine} == {"declared"}
    assert {s.package for s in mine} == {None}
    assert first.register_schedules() == 0
    assert second.register_schedules() == 0
    hourly = first.get_schedule(f"{wf_name}:hourly")
    for h in (1, 2):  # (catch-up "skip": each hour is fired while it is current)
        clock.advance(hours(1))
        until(lambda h=h: len(fired(first, hourly.id)) == h, what=f"{h:02d}:00")
    assert fired(first, hourly.id) == [(T0 + hours(h)).timestamp() for h in (1, 2)]
    until(lambda: len(seen) == 2, what="the runs")
    assert {c["kind"] for c in seen} == {"h"}


def test_a_bad_schedules_argument_is_refused_at_decoration(name: Callable[[str], str]) -> None:
    with pytest.raises(WorkflowDefinitionError, match="cron"):

        @workflow(name=name("bad"), schedules=["0 * * * *"])  # type: ignore[list-item]
        class Bad:
            @task()
            def t(context: Context) -> None:
                return None

    with pytest.raises(WorkflowDefinitionError, match="two schedules named"):

        @workflow(name=name("bad"), schedules=[cron("@daily", name="x"), cron("@hourly", name="x")])
        class Twice:
            @task()
            def t(context: Context) -> None:
                return None


FLOW = """
import os

from cloacina import Context, cron, packaged_workflow, task


@packaged_workflow(name="WF", package="PKG", schedules=[SCHEDULES])
class flow:
    @task(id="tick")
    def tick(context: Context) -> None:
        context.insert("pid", os.getpid())
        context.insert("version", "VERSION")
"""


def package(
    make_package: Callable[..., bytes],
    tmp_path: Path,
    pkg: str,
    wf: str,
    version: str,
    schedules: str,
) -> bytes:
    body = FLOW.replace("WF", wf).replace("PKG", pkg).replace("SCHEDULES", schedules)
    body = body.replace("VERSION", version)  # new code: a new workflow version
    data = make_package(
        tmp_path,
        pkg,
        version,
        {f"{pkg}/__init__.py": "", f"{pkg}/flows.py": textwrap.dedent(body)},
        [f"{pkg}.flows"],
    )
    spec = read_archive(data).manifest.workflow(wf)
    assert spec is not None and spec.schedules, "the manifest carries the schedules"
    return data


def test_a_package_version_upgrade_takes_over_its_schedule_without_double_fire_or_gap(
    make: Callable[..., DefaultRunner],
    make_package: Callable[..., bytes],
    tmp_path: Path,
    clock: FakeClock,
    name: Callable[[str], str],
    until: Callable[..., None],
) -> None:
    pkg, wf = name("schedpkg"), name("pkgflow")
    hourly = 'cron("0 * * * *", name="h", catchup="all")'
    v1 = package(make_package, tmp_path, pkg, wf, "1.0.0", hourly)
    runner = make()
    runner.register_workflow(v1)
    rows = [s for s in runner.list_schedules() if s.workflow == wf]
    assert len(rows) == 1
    sched = rows[0]
    assert (sched.name, sched.source, sched.package) == (f"{wf}:h", "declared", pkg)
    runner.register_workflow(v1)  # the same bytes again: nothing new, nothing changed
    again = runner.get_schedule(sched.id)
    assert again.revision == sched.revision
    assert len(runner.list_schedules(workflow=wf)) == 1

    clock.advance(hours(1))
    until(lambda: fired(runner, sched.id) == [(T0 + hours(1)).timestamp()], what="01:00")

    # Version 2 (new code, same schedule) arrives at 01:30: the same row, no second one.
    clock.advance(hours(0.5))
    v2 = package(make_package, tmp_path, pkg, wf, "2.0.0", hourly)
    runner.register_workflow(v2)
    taken = runner.get_schedule(sched.id)
    assert len([s for s in runner.list_schedules() if s.workflow == wf]) == 1
    assert taken.revision == sched.revision  # nothing differed: untouched
    assert taken.last_fire_at == T0 + hours(1)
    assert taken.next_fire_at == T0 + hours(2)  # no gap
    clock.advance(hours(0.5))
    want = [(T0 + hours(h)).timestamp() for h in (1, 2)]
    until(lambda: fired(runner, sched.id) == want, what="02:00 once")
    # The 02:00 run is version 2's.
    fires = runner.schedule_history(sched.id)
    newest = runner.get_execution(fires[0].execution_id or "")
    assert newest.workflow_name == wf
    v2_version = read_archive(v2).manifest.workflow(wf)
    assert v2_version is not None
    stored = runner.store.get_execution(fires[0].execution_id or "")
    assert stored is not None and stored.workflow_version == v2_version.version

    # Version 3 changes the expression at 02:15: same row; nothing before the change fires.
    clock.advance(hours(0.25))
    v3 = package(make_package, tmp_path, pkg, wf, "3.0.0", 'cron("10 * * * *", name="h")')
    runner.register_workflow(v3)
    changed = runner.get_schedule(sched.id)
    assert changed.cron == "10 * * * *" and changed.id == sched.id
    assert changed.next_fire_at == T0 + hours(3) + timedelta(minutes=10)
    assert changed.last_fire_at == T0 + hours(2)

    # Unregistering version 3 hands the schedule back to version 2's declaration.
    runner.unregister_workflow(pkg, "3.0.0")
    back = runner.get_schedule(sched.id)
    assert back.cron == "0 * * * *" and back.id == sched.id
    clock.advance(hours(0.75))  # 03:00
    want.append((T0 + hours(3)).timestamp())
    until(lambda: fired(runner, sched.id) == want, what="03:00")

    # The schedule goes with the package's last version (after its runs finished).
    until(lambda: all(r.status == "completed" for r in runner.list_executions()), what="runs")
    runner.unregister_workflow(pkg, "2.0.0")
    assert len([s for s in runner.list_schedules() if s.workflow == wf]) == 1
    runner.unregister_workflow(pkg, "1.0.0")
    assert [s for s in runner.list_schedules() if s.workflow == wf] == []
