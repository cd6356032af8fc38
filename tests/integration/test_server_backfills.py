"""``/api/v1/backfills`` over real SQLite and PostgreSQL: started by an operator (not a
viewer), read with its progress, paused, resumed and cancelled, every change in the audit
log; bad input is a 400 naming the problem, an unknown backfill a 404."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from cloacina import Context, task, workflow

from .server_support import running_api

pytestmark = pytest.mark.timeout(120)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_backfills_over_http(db_url: str, name: Callable[[str], str]) -> None:
    wf_name = name("http_bf")
    gate = threading.Event()
    seen: list[str] = []

    @workflow(name=wf_name)
    class Hourly:
        @task
        def work(context: Context) -> None:
            seen.append(str(context.get("scheduled_time")))
            assert gate.wait(30)

    with running_api(db_url) as api:
        body = {
            "workflow": wf_name,
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-01T05:00:00Z",
            "cron": "0 * * * *",
            "max_parallel": 2,
            "context": {"source": "http"},
        }
        assert api.call("POST", "/api/v1/backfills", who="viewer", json=body).status_code == 403
        answer = api.call("POST", "/api/v1/backfills", who="operator", json=body)
        assert answer.status_code == 201, answer.text
        made = answer.json()
        bid = made["id"]
        assert (made["workflow"], made["total"], made["status"]) == (wf_name, 6, "running")
        assert made["context"] == {"source": "http"}
        wait_for(lambda: len(seen) == 2, "the first two runs")

        paused = api.call("POST", f"/api/v1/backfills/{bid}/pause", who="operator")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert api.call("POST", f"/api/v1/backfills/{bid}/resume", who="viewer").status_code == 403
        resumed = api.call("POST", f"/api/v1/backfills/{bid}/resume", who="operator").json()
        assert resumed["status"] == "running"
        gate.set()

        def ended() -> bool:
            doc = api.call("GET", f"/api/v1/backfills/{bid}", who="viewer").json()
            return bool(doc["status"] == "completed")

        wait_for(ended, "the backfill to complete")
        done = api.call("GET", f"/api/v1/backfills/{bid}", who="viewer").json()
        assert (done["created"], done["completed"], done["running"]) == (6, 6, 0)
        assert sorted(seen) == [f"2026-01-01T0{h}:00:00+00:00" for h in range(6)]
        listed = api.call("GET", "/api/v1/backfills", who="viewer").json()["items"]
        assert [b["id"] for b in listed] == [bid]

        # A second one, cancelled while its runs wait on the gate.
        gate.clear()
        body.update(start="2026-01-02T00:00:00Z", end="2026-01-02T05:00:00Z")
        second = api.call("POST", "/api/v1/backfills", who="operator", json=body).json()["id"]
        wait_for(lambda: len(seen) == 8, "the second backfill's first runs")
        cancelled = api.call("POST", f"/api/v1/backfills/{second}/cancel", who="operator")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["cancelled_runs"] == 2
        gate.set()
        again = api.call("POST", f"/api/v1/backfills/{second}/resume", who="operator")
        assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]

        audit = api.call("GET", "/api/v1/audit", params={"action": "backfill.*"}).json()["items"]
        actions = sorted(a["action"] for a in audit if a["outcome"] == "ok")
        assert actions == [
            "backfill.cancel",
            "backfill.create",
            "backfill.create",
            "backfill.pause",
            "backfill.resume",
        ]
        assert {a["target"] for a in audit if a["action"] == "backfill.pause"} == {bid}


def test_bad_backfills_over_http(sqlite_url: str, name: Callable[[str], str]) -> None:
    wf_name = name("http_bad")

    @workflow(name=wf_name)
    class Nothing:
        @task
        def work(context: Context) -> None:
            return None

    with running_api(sqlite_url) as api:
        base = {"workflow": wf_name, "start": "2026-01-02", "end": "2026-01-01", "cron": "@hourly"}
        answer = api.call("POST", "/api/v1/backfills", json=base)
        assert answer.status_code == 400 and "after its end" in answer.json()["error"]["message"]
        unknown = api.call(
            "POST",
            "/api/v1/backfills",
            json={**base, "workflow": wf_name + "x", "end": "2026-01-03"},
        )
        assert unknown.status_code == 404 and repr(wf_name) in unknown.json()["error"]["message"]
        too_many = api.call(
            "POST", "/api/v1/backfills", json={**base, "end": "2026-12-01", "cron": "* * * * *"}
        )
        assert too_many.status_code == 400 and "force" in too_many.json()["error"]["message"]
        bad_cron = api.call("POST", "/api/v1/backfills", json={**base, "cron": "0 25 * * *"})
        assert bad_cron.status_code == 400 and "hour" in bad_cron.json()["error"]["message"]
        assert api.call("GET", "/api/v1/backfills").json()["items"] == []
        missing = api.call("GET", "/api/v1/backfills/nope", who="viewer")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"].startswith("backfill_not_found")


def test_the_client_has_the_runners_backfill_methods(
    sqlite_url: str, name: Callable[[str], str]
) -> None:
    from cloacina import Client
    from cloacina.errors import BackfillNotFoundError, InvalidScheduleError, InvalidStateError

    from .server_support import live_server

    wf_name = name("client_bf")
    gate = threading.Event()

    @workflow(name=wf_name)
    class Daily:
        @task
        def work(context: Context) -> None:
            assert gate.wait(30)

    with live_server(sqlite_url) as live, Client(live.base, api_key=live.api.keys["operator"]) as c:
        bid = c.backfill(
            wf_name, "2026-01-01", "2026-01-10", cron="@daily", max_parallel=3, context={"a": 1}
        )
        got = c.get_backfill(bid[:8])
        assert (got.id, got.total, got.max_parallel, got.context) == (bid, 10, 3, {"a": 1})
        wait_for(lambda: c.get_backfill(bid).created == 3, "three runs")
        c.pause_backfill(bid)
        assert c.list_backfills()[0].status == "paused"
        c.resume_backfill(bid)
        assert c.get_backfill(bid).status == "running"
        assert c.cancel_backfill(bid) == 3
        gate.set()
        with pytest.raises(InvalidStateError):
            c.pause_backfill(bid)
        with pytest.raises(BackfillNotFoundError):
            c.get_backfill("nope")
        with pytest.raises(InvalidScheduleError, match="after its end"):
            c.backfill(wf_name, "2026-01-10", "2026-01-01", cron="@daily")


def test_the_cli_backfills_through_a_server(sqlite_url: str, name: Callable[[str], str]) -> None:
    """``cloacina backfill --server`` starts the backfill on the server (whose runner makes
    and runs its runs) and follows it to the end; ``backfills`` commands work there too."""
    import json

    from click.testing import CliRunner

    from cloacina.cli import cli
    from cloacina.errors import PermissionDeniedError

    from .server_support import live_server

    wf_name = name("cli_srv_bf")
    seen: list[str] = []

    @workflow(name=wf_name)
    class Daily:
        @task
        def work(context: Context) -> None:
            seen.append(str(context.get("scheduled_time")))

    with live_server(sqlite_url) as live:
        remote = ["--server", live.base, "--api-key", live.api.keys["operator"]]
        invoke = CliRunner().invoke
        args = ["backfill", wf_name, "--from", "2026-01-01", "--to", "2026-01-05"]
        started = invoke(cli, [*args, "--cron", "@daily", "--json", *remote])
        assert started.exit_code == 0, started.output
        doc = json.loads(started.output)
        assert (doc["status"], doc["completed"], doc["total"]) == ("completed", 5, 5)
        assert sorted(seen) == [f"2026-01-0{d}T00:00:00+00:00" for d in range(1, 6)]
        listed = invoke(cli, ["backfills", "list", "--json", *remote])
        assert listed.exit_code == 0, listed.output
        assert [b["id"] for b in json.loads(listed.output)["items"]] == [doc["id"]]
        viewer = ["--server", live.base, "--api-key", live.api.keys["viewer"]]
        refused = invoke(cli, ["backfills", "cancel", doc["id"], *viewer])
        # (`cloacina` prints it as an error and exits 2; CliRunner shows the exception.)
        assert isinstance(refused.exception, PermissionDeniedError), refused.output
        assert "operator" in str(refused.exception)
        assert CliRunner().invoke(cli, ["backfills", "show", doc["id"][:8], *viewer]).exit_code == 0
