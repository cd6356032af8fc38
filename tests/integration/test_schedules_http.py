"""Schedules through the HTTP API and ``cloacina.Client`` (SQLite and PostgreSQL): the same
calls give the same values as ``DefaultRunner``, a viewer reads and an operator changes,
every change is in the audit log, and bad input is a 400 naming the fault."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from cloacina import Context, task, workflow
from cloacina.errors import InvalidScheduleError, NotFoundError, PermissionDeniedError, RequestError

from .client_support import Served, start_server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    yield from start_server(db_url)


def test_schedules_through_the_client_match_the_runner(
    served: Served, name: Callable[[str], str]
) -> None:
    wf_name = name("http_sched")

    @workflow(name=wf_name)
    class HttpSched:
        @task()
        def t(context: Context) -> None:
            return None

    client = served.client()
    sid = client.add_schedule(
        wf_name,
        "0 2 * * *",
        timezone="Europe/Berlin",
        context={"k": 1},
        catchup="latest",
        start=datetime(2027, 1, 1, tzinfo=UTC),
        name="nightly-http",
    )
    local = served.local
    assert client.get_schedule(sid) == local.get_schedule(sid)
    assert client.get_schedule("nightly-http").id == sid
    assert client.list_schedules() == local.list_schedules()
    assert client.list_schedules(workflow=wf_name + "x") == []
    first = client.get_schedule(sid).next_fire_at
    assert first == datetime(2027, 1, 1, 1, 0, tzinfo=UTC)  # 02:00 in Berlin (UTC+1)

    client.pause_schedule(sid)
    assert local.get_schedule(sid).enabled is False
    client.resume_schedule(sid)
    assert local.get_schedule(sid).enabled is True
    changed = client.update_schedule(sid, cron="30 3 * * *", context={"k": 2}, start=None)
    assert changed == local.get_schedule(sid)
    assert (changed.cron, changed.context, changed.start) == ("30 3 * * *", {"k": 2}, None)
    kept = client.update_schedule(sid, max_catchup=7)
    assert kept.start is None and kept.max_catchup == 7 and kept.cron == "30 3 * * *"
    assert client.schedule_history(sid) == local.schedule_history(sid) == []

    with pytest.raises(InvalidScheduleError) as bad:
        client.add_schedule(wf_name, "0 2 * * * * *")
    assert "field" in str(bad.value) or "6" in str(bad.value) or "7" in str(bad.value)
    with pytest.raises(RequestError, match="hour"):
        client.add_schedule(wf_name, "0 24 * * *")
    with pytest.raises(NotFoundError, match=wf_name):
        client.add_schedule(wf_name[:-1], "0 2 * * *")
    with pytest.raises(RequestError, match="max_catchup"):
        client.update_schedule(sid, max_catchup=0)
    assert len(local.list_schedules()) == 1

    client.remove_schedule(sid)
    with pytest.raises(NotFoundError):
        client.get_schedule(sid)

    actions = [e.action for e in local.list_audit(limit=50).items if e.target == sid]
    assert {
        "schedule.add",
        "schedule.pause",
        "schedule.resume",
        "schedule.update",
        "schedule.remove",
    } <= set(actions)


def test_a_viewer_reads_schedules_and_may_not_change_them(
    served: Served, name: Callable[[str], str]
) -> None:
    wf_name = name("http_view")

    @workflow(name=wf_name)
    class HttpView:
        @task()
        def t(context: Context) -> None:
            return None

    sid = served.local.add_schedule(wf_name, "@daily")
    viewer_key = served.local.create_api_key("viewer", "viewer").key
    viewer = served.client(viewer_key)
    assert [s.id for s in viewer.list_schedules()] == [sid]
    assert viewer.schedule_history(sid) == []
    with pytest.raises(PermissionDeniedError):
        viewer.pause_schedule(sid)
    with pytest.raises(PermissionDeniedError):
        viewer.add_schedule(wf_name, "@hourly")
    assert served.local.get_schedule(sid).enabled


def test_the_schedule_commands_work_through_a_server(
    served: Served, name: Callable[[str], str]
) -> None:
    import json

    from click.testing import CliRunner

    from cloacina.cli import cli

    wf_name = name("cli_server")

    @workflow(name=wf_name)
    class CliServer:
        @task()
        def t(context: Context) -> None:
            return None

    remote = ["--server", served.base, "--api-key", served.key]
    runner = CliRunner()
    added = runner.invoke(
        cli, ["schedules", "add", wf_name, "@hourly", "--name", "via-server", "--json", *remote]
    )
    assert added.exit_code == 0, added.output
    sid = json.loads(added.output)["id"]
    assert served.local.get_schedule(sid).name == "via-server"
    listed = runner.invoke(cli, ["schedules", "list", "--json", *remote])
    assert listed.exit_code == 0, listed.output
    assert [s["id"] for s in json.loads(listed.output)] == [sid]
    paused = runner.invoke(cli, ["schedules", "pause", "via-server", *remote])
    assert paused.exit_code == 0, paused.output
    assert served.local.get_schedule(sid).enabled is False
    updated = runner.invoke(
        cli, ["schedules", "update", sid, "--cron", "15 * * * *", "--json", *remote]
    )
    assert updated.exit_code == 0 and json.loads(updated.output)["cron"] == "15 * * * *"
    removed = runner.invoke(cli, ["schedules", "remove", sid, *remote])
    assert removed.exit_code == 0, removed.output
    assert served.local.list_schedules() == []
    actors = {e.actor for e in served.local.list_audit(limit=20).items if e.target == sid}
    assert actors and all(a.startswith("key:") for a in actors)
