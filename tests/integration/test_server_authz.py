"""The authorisation matrix, generated from the app's own route table: every route x no key /
bad key / another tenant's key / viewer / operator / admin. A route added later is in the
matrix without anyone writing a line here; one that declares no role and is not a public
probe fails :func:`test_every_route_declares_a_role`.

Requests use placeholder ids (``nothing``), so a caller that is let in gets a 404 or a 400,
never a change: the test checks who is let in, not what the route does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.server.app import PUBLIC_PATHS, route_table
from cloacina.service.keys import Role, allows
from cloacina.service.tenants import create_tenant

from .server_support import ROLES, Api, running_api, unique_tenant

pytestmark = pytest.mark.timeout(120)


#: DESIGN §9's table: every route with its least role.
CONTRACT: dict[tuple[str, str], Role] = {
    ("POST", "/api/v1/packages"): Role.ADMIN,
    ("GET", "/api/v1/packages"): Role.VIEWER,
    ("GET", "/api/v1/packages/{name}/{version}"): Role.VIEWER,
    ("GET", "/api/v1/packages/{name}/{version}/archive"): Role.VIEWER,
    ("DELETE", "/api/v1/packages/{name}/{version}"): Role.ADMIN,
    ("GET", "/api/v1/workflows"): Role.VIEWER,
    ("GET", "/api/v1/workflows/{name}"): Role.VIEWER,
    ("POST", "/api/v1/executions"): Role.OPERATOR,
    ("GET", "/api/v1/executions"): Role.VIEWER,
    ("GET", "/api/v1/executions/{execution_id}"): Role.VIEWER,
    ("GET", "/api/v1/executions/{execution_id}/attempts"): Role.VIEWER,
    ("GET", "/api/v1/executions/{execution_id}/events"): Role.VIEWER,
    ("POST", "/api/v1/executions/{execution_id}/cancel"): Role.OPERATOR,
    ("POST", "/api/v1/executions/{execution_id}/pause"): Role.OPERATOR,
    ("POST", "/api/v1/executions/{execution_id}/resume"): Role.OPERATOR,
    ("GET", "/api/v1/executions/{execution_id}/tasks/{task_id}/logs"): Role.VIEWER,
    ("GET", "/api/v1/workers"): Role.VIEWER,
    ("GET", "/metrics"): Role.VIEWER,
    ("GET", "/api/v1/audit"): Role.ADMIN,
    ("POST", "/api/v1/keys"): Role.ADMIN,
    ("GET", "/api/v1/keys"): Role.ADMIN,
    ("DELETE", "/api/v1/keys/{key_id}"): Role.ADMIN,
}


def route_role(route: APIRoute) -> Role | None:
    """The least role a route's dependencies ask for (None: it asks none)."""
    found: list[Role] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        role = getattr(dep.call, "role", None)
        if isinstance(role, Role):
            found.append(role)
        stack.extend(dep.dependencies)
    return max(found, key=lambda r: r.rank) if found else None


def api_routes(api: Api) -> list[tuple[str, str, Role]]:
    """``(method, path, least role)`` of every route that needs a key."""
    table = []
    for route in route_table(api.client.app.routes):  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute):
            continue
        role = route_role(route)
        if role is None:
            continue
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            table.append((method, route.path, role))
    return table


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nothing", path)


def request_kwargs(method: str, path: str) -> dict[str, Any]:
    if method in ("POST", "PUT", "PATCH") and path == "/api/v1/packages":
        return {
            "content": b"not a package",
            "headers": {"Content-Type": "application/octet-stream"},
        }
    if method in ("POST", "PUT", "PATCH"):
        return {"json": {}}
    return {}


def test_every_route_declares_a_role(sqlite_url: str) -> None:
    with running_api(sqlite_url) as api:
        unguarded = []
        for route in route_table(api.client.app.routes):  # type: ignore[attr-defined]
            if isinstance(route, APIRoute) and route_role(route) is None:
                if route.path not in PUBLIC_PATHS:
                    unguarded.append(route.path)
            elif isinstance(route, Route) and not isinstance(route, APIRoute):
                assert route.path in PUBLIC_PATHS, f"{route.path}: not an API route, not public"
        assert unguarded == [], f"routes without a role: {unguarded}"
        declared = {(m, p): role for m, p, role in api_routes(api)}
        missing = {k: v for k, v in CONTRACT.items() if declared.get(k) != v}
        assert missing == {}, f"routes of DESIGN §9 missing or with another role: {missing}"


def test_authorisation_matrix(db_url: str) -> None:
    with running_api(db_url) as api:
        table = api_routes(api)
        assert len(table) >= 15
        failures = []
        for method, path, least in table:
            url = concrete(path)
            for who in (None, "bad", "other", *ROLES):
                kwargs = request_kwargs(method, path)
                headers = kwargs.pop("headers", {})
                if who == "other":
                    # A key bound to another tenant, asking for this one.
                    headers["X-Cloacina-Tenant"] = "public"
                answer = api.call(method, url, who=who, headers=headers, **kwargs)
                status = answer.status_code
                if who in (None, "bad"):
                    expected: set[int] | None = {401}
                elif who == "other" or not allows(who, least):
                    expected = {403}
                else:
                    expected = None  # let in: anything but 401/403 (404, 400...)
                ok = status in expected if expected else status not in (401, 403, 500)
                body = (
                    answer.json()
                    if answer.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                if status >= 400 and not (isinstance(body, dict) and "error" in body):
                    ok = False  # every error is the JSON error body
                if not ok:
                    failures.append(f"{method} {path} as {who}: {status} {answer.text[:120]}")
        assert failures == [], "\n".join(failures)


def test_other_tenants_resources_are_not_found(db_url: str, name: Callable[[str], str]) -> None:
    """A run of one tenant asked for with a key bound to another: 404, as if it did not
    exist."""
    flow_name = name("authz_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("done", True)

    with running_api(db_url) as api:
        started = api.call("POST", "/api/v1/executions", json={"workflow": flow_name})
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        for path in ("", "/attempts"):
            seen = api.call("GET", f"/api/v1/executions/{execution_id}{path}", who="viewer")
            assert seen.status_code == 200
            hidden = api.call("GET", f"/api/v1/executions/{execution_id}{path}", who="other")
            assert hidden.status_code == 404, hidden.text
            assert hidden.json()["error"]["code"] == "execution_not_found"
        cancel = api.call("POST", f"/api/v1/executions/{execution_id}/cancel", who="other")
        assert cancel.status_code == 404
        # A key for every tenant naming a tenant that does not exist: 404 too.
        missing = api.call(
            "GET", "/api/v1/executions", headers={"X-Cloacina-Tenant": "no_such_tenant"}
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "tenant_not_found"


def test_revoked_and_tenant_bound_admin_keys(sqlite_url: str) -> None:
    with running_api(sqlite_url) as api:
        made = api.call(
            "POST", "/api/v1/keys", json={"name": "temp", "role": "viewer", "tenant": None}
        )
        assert made.status_code == 201, made.text
        key_id, secret = made.json()["id"], made.json()["key"]
        headers = {"Authorization": f"Bearer {secret}"}
        assert api.client.get("/api/v1/executions", headers=headers).status_code == 200
        listed = api.call("GET", "/api/v1/keys").json()["items"]
        assert key_id in {k["id"] for k in listed}
        assert all("key" not in k and secret not in str(k) for k in listed)
        assert api.call("DELETE", f"/api/v1/keys/{key_id}").status_code == 204
        refused = api.client.get("/api/v1/executions", headers=headers)
        assert refused.status_code == 401
        assert secret not in refused.text
        # A tenant's admin: keys of its tenant only, and only its keys are visible.
        own = api.call("POST", "/api/v1/keys", who="other", json={"name": "x", "role": "viewer"})
        assert own.status_code == 201
        assert own.json()["tenant"] == api.other_tenant
        escalate = api.call(
            "POST",
            "/api/v1/keys",
            who="other",
            json={"name": "y", "role": "admin", "tenant": "public"},
        )
        assert escalate.status_code == 403
        visible = api.call("GET", "/api/v1/keys", who="other").json()["items"]
        assert {k["tenant"] for k in visible} == {api.other_tenant}
        admin_key_id = next(k["id"] for k in listed if k["name"] == "test-admin")
        gone = api.call("DELETE", f"/api/v1/keys/{admin_key_id}", who="other")
        assert gone.status_code == 404


def test_a_key_revoked_elsewhere_stops_working_within_a_second(sqlite_url: str) -> None:
    """Authentications are remembered for a second (one database read per key and second);
    a revocation by another process (the CLI) takes effect within it."""
    with running_api(sqlite_url) as api:
        created = api.state.primary.create_api_key("elsewhere", "viewer")
        headers = {"Authorization": f"Bearer {created.key}"}
        assert api.client.get("/api/v1/executions", headers=headers).status_code == 200
        other_process = DefaultRunner(sqlite_url, execute_tasks=False)
        try:
            other_process.revoke_api_key(created.id)
        finally:
            other_process.shutdown()
        deadline = time.monotonic() + 3
        while api.client.get("/api/v1/executions", headers=headers).status_code == 200:
            assert time.monotonic() < deadline, "a revoked key still works after 3 s"
            time.sleep(0.05)
        assert api.client.get("/api/v1/executions", headers=headers).status_code == 401


def test_a_server_of_another_tenant(db_url: str, name: Callable[[str], str]) -> None:
    """``cloacina serve --tenant T``: keys still live in the default tenant's database; a
    key for every tenant acts in T unless it names another; a key bound to ``public`` acts
    in public (its runner opened on first use, submit-only)."""
    flow_name = name("tenant_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("done", True)

    served = unique_tenant()
    create_tenant(db_url, served)
    with running_api(db_url, tenant=served) as api:
        public_key = api.state.primary.create_api_key("public-viewer", "viewer", tenant="public")
        started = api.call("POST", "/api/v1/executions", json={"workflow": flow_name})
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        detail = api.call("GET", f"/api/v1/executions/{execution_id}").json()
        assert detail["tenant"] == served
        # Not in public: neither with the header nor for a key bound to public.
        hidden = api.call(
            "GET", f"/api/v1/executions/{execution_id}", headers={"X-Cloacina-Tenant": "public"}
        )
        assert hidden.status_code == 404
        bound = api.client.get(
            f"/api/v1/executions/{execution_id}",
            headers={"Authorization": f"Bearer {public_key.key}"},
        )
        assert bound.status_code == 404
        listed = api.client.get(
            "/api/v1/executions", headers={"Authorization": f"Bearer {public_key.key}"}
        )
        assert listed.status_code == 200 and listed.json()["items"] == []
