"""The web UI's sign-in, session cookie and CSRF checks over HTTP, on SQLite and PostgreSQL
(the browser tests in tests/e2e/test_ui_*.py drive the same pages in Chromium)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from cloacina import Context, task, workflow

from .server_support import Api, running_api

pytestmark = pytest.mark.timeout(120)


def sign_in(api: Api, who: str, client: TestClient | None = None) -> TestClient:
    client = client or api.client
    answer = client.post("/", data={"api_key": api.keys[who]}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/runs"
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def start_run(api: Api, name: Callable[[str], str]) -> str:
    flow_name = name("ui_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("x", 1)

    return api.state.primary.schedule_workflow(flow_name, {})


def test_sign_in_cookie_and_sign_out(db_url: str) -> None:
    with running_api(db_url, execute=False) as api:
        client = api.client
        page = client.get("/")
        assert page.status_code == 200 and 'name="api_key"' in page.text

        bad = client.post("/", data={"api_key": "clk_" + "x" * 43}, follow_redirects=False)
        assert bad.status_code == 401 and "not accepted" in bad.text
        assert "set-cookie" not in bad.headers
        empty = client.post("/", data={"api_key": ""}, follow_redirects=False)
        assert empty.status_code == 401 and "set-cookie" not in empty.headers
        assert client.get("/runs", follow_redirects=False).headers["location"] == "/"

        # A sign-in posted from another site is refused (login CSRF).
        evil = {"Origin": "https://evil.example"}
        forged = client.post(
            "/", data={"api_key": api.keys["viewer"]}, headers=evil, follow_redirects=False
        )
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"

        good = client.post(
            "/",
            data={"api_key": api.keys["viewer"]},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        cookie = good.headers["set-cookie"]
        assert cookie.startswith("cloacina_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Secure" not in cookie  # plain HTTP here
        assert api.keys["viewer"] not in str(good.headers)
        runs = client.get("/runs")
        assert runs.status_code == 200 and "<h1>Runs</h1>" in runs.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/runs"

        # Signing out needs the session's CSRF token.
        refused = client.post("/signout", data={}, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/runs").status_code == 200
        out = client.post("/signout", data={"csrf": csrf_of(runs.text)}, follow_redirects=False)
        assert out.status_code == 303 and 'cloacina_session=""' in out.headers["set-cookie"]
        assert client.get("/runs", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https(sqlite_url: str) -> None:
    with running_api(sqlite_url, execute=False) as api:
        https = TestClient(api.client.app, base_url="https://testserver")
        answer = https.post("/", data={"api_key": api.keys["admin"]}, follow_redirects=False)
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]


def test_revoked_key_ends_its_session(sqlite_url: str) -> None:
    with running_api(sqlite_url, execute=False) as api:
        primary = api.state.primary
        created = primary.create_api_key("ui-short", "viewer")
        client = api.client
        client.post("/", data={"api_key": created.key}, follow_redirects=False)
        assert client.get("/runs").status_code == 200
        primary.revoke_api_key(created.id)
        api.client.app.state.cloacina_keys.clear()  # type: ignore[attr-defined]
        assert client.get("/runs", follow_redirects=False).headers["location"] == "/"


def test_run_controls_need_csrf_and_the_operator_role(
    db_url: str, name: Callable[[str], str]
) -> None:
    with running_api(db_url, execute=False) as api:
        execution_id = start_run(api, name)
        runner = api.state.primary

        viewer = sign_in(api, "viewer")
        page = viewer.get(f"/runs/{execution_id}")
        assert page.status_code == 200 and "only" in page.text
        assert ">Cancel<" not in page.text
        forged = viewer.post(
            f"/runs/{execution_id}/cancel",
            data={"csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert forged.status_code == 403
        assert not runner.get_execution_status(execution_id).is_terminal

        operator = TestClient(api.client.app)
        sign_in(api, "operator", operator)
        page = operator.get(f"/runs/{execution_id}")
        assert ">Cancel<" in page.text
        for data in ({}, {"csrf": "0" * 64}, {"csrf": csrf_of(viewer.get("/runs").text)}):
            refused = operator.post(
                f"/runs/{execution_id}/cancel", data=data, follow_redirects=False
            )
            assert refused.status_code == 403, data
        assert not runner.get_execution_status(execution_id).is_terminal

        # The right token from another site's page is refused too.
        elsewhere = operator.post(
            f"/runs/{execution_id}/cancel",
            data={"csrf": csrf_of(page.text)},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        )
        assert elsewhere.status_code == 403
        assert not runner.get_execution_status(execution_id).is_terminal

        done = operator.post(
            f"/runs/{execution_id}/cancel",
            data={"csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        assert runner.get_execution_status(execution_id).value == "cancelled"
        audit = runner.list_audit(action="run.cancel").items
        assert any(a.target == execution_id and a.outcome == "ok" for a in audit)
        again = operator.post(
            f"/runs/{execution_id}/cancel",
            data={"csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert again.status_code == 409
        missing = operator.get("/runs/no-such-run")
        assert missing.status_code == 404


def test_runs_page_lists_filters_and_pages(db_url: str, name: Callable[[str], str]) -> None:
    with running_api(db_url, execute=False) as api:
        ids = [start_run(api, name) for _ in range(3)]
        client = sign_in(api, "viewer")
        page = client.get("/runs")
        for execution_id in ids:
            assert f'href="/runs/{execution_id}"' in page.text
            assert f"<code>{execution_id[:8]}</code>" in page.text
        counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', page.text))
        assert counts["failed"] == "0" and sum(int(n) for n in counts.values()) == 3
        # Newest first.
        positions = [page.text.index(f'href="/runs/{i}"') for i in ids]
        assert positions == sorted(positions, reverse=True)
        first = client.get("/runs?limit=2")
        assert ids[2] in first.text and ids[0] not in first.text
        older = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert older
        second = client.get(older.group(1).replace("&amp;", "&"))
        assert ids[0] in second.text and ids[2] not in second.text
        only = client.get(f"/runs?q={ids[1][:12]}")
        assert ids[1] in only.text and ids[0] not in only.text
        none = client.get("/runs?status=failed")
        assert "No runs match." in none.text
        bad = client.get("/runs?since=yesterday")
        assert bad.status_code == 400
        rows = client.get(f"/ui/runs/rows?ids={ids[0]},nope&status=failed")
        assert ids[0] not in rows.text
        rows = client.get(f"/ui/runs/rows?ids={ids[0]},nope")
        assert ids[0] in rows.text


def test_tenant_switcher_and_tenant_bound_keys(db_url: str, name: Callable[[str], str]) -> None:
    with running_api(db_url, execute=False) as api:
        here = start_run(api, name)
        flow_name = name("ui_other")

        @workflow(name=flow_name)
        class flow:
            @task()
            def only(context: Context) -> None:
                context.insert("x", 1)

        there = api.state.runner(api.other_tenant).schedule_workflow(flow_name, {})

        admin = sign_in(api, "admin")
        runs = admin.get("/runs").text
        assert here in runs and there not in runs
        assert f'<option value="{api.other_tenant}"' in runs
        token = csrf_of(runs)
        assert admin.post("/tenant", data={"tenant": api.other_tenant}).status_code == 403
        missing = admin.post("/tenant", data={"tenant": "t_nowhere", "csrf": token})
        assert missing.status_code == 404
        switched = admin.post(
            "/tenant", data={"tenant": api.other_tenant, "csrf": token}, follow_redirects=False
        )
        assert switched.status_code == 303
        runs = admin.get("/runs").text
        assert there in runs and here not in runs
        assert admin.get(f"/runs/{here}").status_code == 404

        bound = TestClient(api.client.app)
        sign_in(api, "other", bound)
        runs = bound.get("/runs").text
        assert there in runs and here not in runs
        assert 'name="tenant"' not in runs
        refused = bound.post("/tenant", data={"tenant": "public", "csrf": csrf_of(runs)})
        assert refused.status_code == 403
        assert here not in bound.get("/runs").text
        assert bound.get(f"/runs/{here}").status_code == 404


def test_no_auth_server_signs_in_without_a_key(sqlite_url: str) -> None:
    with running_api(sqlite_url, execute=False, auth=False) as api:
        client = api.client
        answer = client.post("/", data={"api_key": ""}, follow_redirects=False)
        assert answer.status_code == 303
        runs = client.get("/runs")
        assert runs.status_code == 200 and "admin" in runs.text


def test_runs_feed_ends_when_the_key_is_revoked(
    sqlite_url: str, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloacina.server.ui import live

    monkeypatch.setattr(live, "RECHECK", 0.3)
    with running_api(sqlite_url, execute=False) as api:
        primary = api.state.primary
        created = primary.create_api_key("ui-feed", "viewer")
        client = api.client
        client.post("/", data={"api_key": created.key}, follow_redirects=False)
        seen: list[str] = []
        with client.stream("GET", "/ui/events") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines) == ": open"
            execution_id = start_run(api, name)
            for line in lines:
                seen.append(line)
                if execution_id in line:
                    break
            primary.revoke_api_key(created.id)
            api.client.app.state.cloacina_keys.clear()  # type: ignore[attr-defined]
            started = time.monotonic()
            seen += list(lines)  # ends: the session is no longer signed in
            assert time.monotonic() - started < 10
        assert any("event: run" in line for line in seen)
        assert client.get("/ui/events").status_code == 401
