"""The HTTP API (DESIGN §9) over real SQLite and PostgreSQL: runs started, listed, read,
streamed and controlled; packages uploaded, listed, downloaded, run and deleted; the audit
rows of it all; the probes and /metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from cloacina import Context, task, workflow

from .server_support import Api, running_api

pytestmark = pytest.mark.timeout(120)

PackageFactory = Callable[..., bytes]


def sse_events(api: Api, execution_id: str, **headers: str) -> list[dict[str, Any]]:
    """The events of a run's stream, read until the server ends it."""
    import json

    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with api.client.stream(
        "GET",
        f"/api/v1/executions/{execution_id}/events",
        headers=api.auth("viewer", Accept="text/event-stream", **headers),
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line == "":
                if current:
                    events.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return events


def test_run_stream_read_list_and_audit(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("api_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def first(context: Context) -> None:
            context.insert("doubled", context["n"] * 2)

        @task(dependencies=["first"])
        def second(context: Context) -> None:
            context.insert("total", context["doubled"] + 1)

    with running_api(db_url) as api:
        started = api.call(
            "POST",
            "/api/v1/executions",
            who="operator",
            json={"workflow": flow_name, "context": {"n": 4}},
            headers={"Idempotency-Key": "ignored-for-now"},
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        request_id = started.headers["X-Request-Id"]

        events = sse_events(api, execution_id)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "execution_started"
        assert kinds[-1] == "execution_completed"
        assert kinds.count("task_completed") == 2
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert all(e["data"]["seq"] == e["id"] and e["data"]["type"] == e["event"] for e in events)
        assert all(e["data"]["at"].endswith("Z") for e in events)
        # Resumed after the third event: the rest only.
        resumed = sse_events(api, execution_id, **{"Last-Event-ID": str(ids[2])})
        assert [e["id"] for e in resumed] == ids[3:]
        # The same events as JSON without Accept: text/event-stream.
        plain = api.call("GET", f"/api/v1/executions/{execution_id}/events", who="viewer")
        assert [e["seq"] for e in plain.json()["items"]] == ids

        detail = api.call("GET", f"/api/v1/executions/{execution_id}", who="viewer").json()
        assert detail["status"] == "completed"
        assert detail["final_context"]["total"] == 9
        assert set(detail["tasks"]) == {"first", "second"}
        assert detail["tasks"]["second"]["status"] == "completed"
        assert detail["tasks"]["second"]["attempts"] == 1
        assert detail["started_at"].endswith("Z") and detail["finished_at"].endswith("Z")

        attempts = api.call("GET", f"/api/v1/executions/{execution_id}/attempts", who="viewer")
        assert [(a["task_id"], a["outcome"]) for a in attempts.json()["items"]] == [
            ("first", "completed"),
            ("second", "completed"),
        ]

        for _ in range(2):
            more = api.call(
                "POST", "/api/v1/executions", json={"workflow": flow_name, "context": {"n": 1}}
            )
            assert more.status_code == 201
        page = api.call("GET", "/api/v1/executions", who="viewer", params={"limit": 2}).json()
        assert len(page["items"]) == 2 and page["next_cursor"]
        rest = api.call(
            "GET",
            "/api/v1/executions",
            who="viewer",
            params={"limit": 2, "cursor": page["next_cursor"]},
        ).json()
        seen = [i["execution_id"] for i in page["items"] + rest["items"]]
        assert execution_id in seen and len(set(seen)) == 3
        assert rest["next_cursor"] is None
        summary = next(
            i for i in rest["items"] + page["items"] if i["execution_id"] == execution_id
        )
        for field in (
            "workflow_name",
            "workflow_version",
            "status",
            "started_at",
            "finished_at",
            "error",
        ):
            assert field in summary
        filtered = api.call(
            "GET", "/api/v1/executions", who="viewer", params={"workflow": "no_such_flow"}
        ).json()
        assert filtered["items"] == []
        found = api.call(
            "GET", "/api/v1/executions", who="viewer", params={"q": execution_id[:8]}
        ).json()
        assert [i["execution_id"] for i in found["items"]] == [execution_id]

        # Finished: a cancel is a conflict.
        late = api.call("POST", f"/api/v1/executions/{execution_id}/cancel", who="operator")
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "invalid_state"

        audit = api.call("GET", "/api/v1/audit", params={"action": "run.*"}).json()["items"]
        mine = [a for a in audit if request_id == a["request_id"]]
        assert len(mine) == 1, audit
        assert mine[0]["actor"].endswith("(test-operator)")
        assert mine[0]["outcome"] == "ok"
        assert execution_id in mine[0]["target"]
        failed_cancel = [a for a in audit if a["action"] == "run.cancel"]
        assert failed_cancel and failed_cancel[0]["outcome"] != "ok"


def test_pause_resume_cancel_over_http(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("api_control")
    gate = threading.Event()

    @workflow(name=flow_name)
    class flow:
        @task()
        def slow(context: Context) -> None:
            gate.wait(20)

        @task(dependencies=["slow"])
        def after(context: Context) -> None:
            context.insert("after", True)

    with running_api(db_url) as api:
        execution_id = api.call("POST", "/api/v1/executions", json={"workflow": flow_name}).json()[
            "execution_id"
        ]
        assert (
            api.call("POST", f"/api/v1/executions/{execution_id}/pause", who="operator").status_code
            == 202
        )
        status = api.call("GET", f"/api/v1/executions/{execution_id}").json()["status"]
        assert status == "paused"
        assert api.call("POST", f"/api/v1/executions/{execution_id}/resume").status_code == 202
        cancel = api.call(
            "POST", f"/api/v1/executions/{execution_id}/cancel", json={"reason": "test says stop"}
        )
        assert cancel.status_code == 202
        gate.set()
        events = sse_events(api, execution_id)
        assert events[-1]["event"] == "execution_cancelled"
        detail = api.call("GET", f"/api/v1/executions/{execution_id}").json()
        assert detail["status"] == "cancelled" and detail["error"] == "test says stop"
        actions = [a["action"] for a in api.call("GET", "/api/v1/audit").json()["items"]]
        for action in ("run.pause", "run.resume", "run.cancel"):
            assert action in actions


PKG_FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="http_pkg_flow", package="http_pkg")
class http_pkg_flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        context.insert("greeting", "hello " + context.get("who", "nobody"))
"""


def test_packages_over_http(db_url: str, tmp_path: Path, make_package: PackageFactory) -> None:
    data = make_package(
        tmp_path,
        "http_pkg",
        "1.0.0",
        {"http_pkg/__init__.py": "", "http_pkg/flows.py": PKG_FLOW},
        ["http_pkg.flows"],
    )
    octet = {"Content-Type": "application/octet-stream"}
    with running_api(db_url, stale_claim_threshold=1.0) as api:
        created = api.call("POST", "/api/v1/packages", content=data, headers=octet)
        assert created.status_code == 201, created.text
        doc = created.json()
        assert (doc["name"], doc["version"], doc["created"]) == ("http_pkg", "1.0.0", True)
        assert doc["workflows"] == ["http_pkg_flow"]
        again = api.call("POST", "/api/v1/packages", content=data, headers=octet)
        assert again.status_code == 200 and again.json()["created"] is False
        assert again.json()["package_id"] == doc["package_id"]

        listed = api.call("GET", "/api/v1/packages", who="viewer").json()["items"]
        assert [(p["name"], p["version"], p["is_default"], p["signed"]) for p in listed] == [
            ("http_pkg", "1.0.0", True, False)
        ]
        assert listed[0]["registered_at"].endswith("Z")
        detail = api.call("GET", "/api/v1/packages/http_pkg/1.0.0", who="viewer").json()
        assert detail["manifest"]["package"]["name"] == "http_pkg"
        assert [w["name"] for w in detail["manifest"]["workflows"]] == ["http_pkg_flow"]
        archive = api.call("GET", "/api/v1/packages/http_pkg/1.0.0/archive", who="viewer")
        assert archive.status_code == 200 and archive.content == data

        workflows = api.call("GET", "/api/v1/workflows", who="viewer").json()["items"]
        mine = next(w for w in workflows if w["name"] == "http_pkg_flow")
        assert mine["package"] == "http_pkg"
        assert mine["tasks"] == [{"id": "hello", "dependencies": []}]
        one = api.call("GET", "/api/v1/workflows/http_pkg_flow", who="viewer").json()
        assert one == mine

        run = api.call(
            "POST",
            "/api/v1/executions",
            json={"workflow": "http_pkg_flow", "context": {"who": "http"}},
        )
        execution_id = run.json()["execution_id"]
        assert sse_events(api, execution_id)[-1]["event"] == "execution_completed"
        result = api.call("GET", f"/api/v1/executions/{execution_id}").json()
        assert result["final_context"]["greeting"] == "hello http"

        assert api.call("DELETE", "/api/v1/packages/http_pkg/1.0.0").status_code == 204
        gone = api.call("GET", "/api/v1/packages/http_pkg/1.0.0", who="viewer")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "package_not_found"
        actions = [a["action"] for a in api.call("GET", "/api/v1/audit").json()["items"]]
        assert "package.register" in actions and "package.delete" in actions


def test_probes_and_metrics(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("api_metrics")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("x", 1)

    with running_api(db_url) as api:
        assert api.client.get("/healthz").json() == {"status": "ok"}
        assert api.client.get("/readyz").status_code == 200
        assert api.client.get("/metrics").status_code == 401
        run = api.call("POST", "/api/v1/executions", json={"workflow": flow_name}).json()
        sse_events(api, run["execution_id"])
        deadline = time.monotonic() + 5
        while True:
            text = api.call("GET", "/metrics", who="viewer").text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            assert families, text[:200]
            finished = [
                s
                for f in families.values()
                for s in f.samples
                if s.labels.get("workflow") == flow_name
            ]
            if finished or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert finished, "no sample of the workflow's run in /metrics"
        for key in api.keys.values():
            assert key not in text
        docs = api.client.get("/openapi.json").json()
        assert "/api/v1/executions/{execution_id}/events" in docs["paths"]
        assert api.client.get("/docs").status_code == 200


def test_task_logs_over_http(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("api_logs")
    gate = threading.Event()

    @workflow(name=flow_name)
    class flow:
        @task()
        def talk(context: Context) -> None:
            print("first line")
            gate.wait(20)
            print("second line")

    with running_api(db_url) as api:
        execution_id = api.call("POST", "/api/v1/executions", json={"workflow": flow_name}).json()[
            "execution_id"
        ]
        path = f"/api/v1/executions/{execution_id}/tasks/talk/logs"
        followed: list[str] = []

        def follow() -> None:
            with api.client.stream(
                "GET", path, params={"follow": "true"}, headers=api.auth("viewer")
            ) as answer:
                assert answer.status_code == 200
                for text in answer.iter_text():
                    followed.append(text)

        deadline = time.monotonic() + 10
        while "first line" not in api.call("GET", path, who="viewer").text:
            assert time.monotonic() < deadline, "the first line was never stored"
            time.sleep(0.05)
        reader = threading.Thread(target=follow)
        reader.start()
        time.sleep(0.2)
        gate.set()
        reader.join(20)
        assert not reader.is_alive(), "the followed log did not end with the attempt"
        assert "".join(followed) == "first line\nsecond line\n"
        whole = api.call("GET", path, who="viewer", params={"attempt": 1})
        assert whole.headers["content-type"].startswith("text/plain")
        assert whole.text == "first line\nsecond line\n"
        missing = api.call("GET", f"/api/v1/executions/{execution_id}/tasks/nope/logs")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "task_not_found"
        follow_missing = api.call(
            "GET",
            f"/api/v1/executions/{execution_id}/tasks/talk/logs",
            params={"attempt": 9, "follow": "true"},
        )
        assert follow_missing.status_code == 404


def test_readyz_is_503_when_the_schema_is_not_current(db_url: str) -> None:
    with running_api(db_url) as api:
        assert api.client.get("/readyz").status_code == 200
        engine = api.state.primary.store.engine
        with engine.begin() as conn:
            (revision,) = conn.execute(text("SELECT version_num FROM alembic_version")).one()
            conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        try:
            answer = api.client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "unavailable"
            assert api.client.get("/healthz").status_code == 200  # alive, not ready
        finally:
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
        assert api.client.get("/readyz").status_code == 200
