"""The web UI's Workflows and Packages pages over HTTP, on SQLite and PostgreSQL: what each
role sees, the start form (its context checked, the start audited), upload (verified, or
refused with the engine's reason), delete, and forged posts refused (the browser tests in
test_ui_workflows_browser.py / test_ui_packages_browser.py drive the same pages)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloacina import Context, task, workflow

from .server_support import Api, running_api
from .test_ui_session import csrf_of, sign_in

pytestmark = pytest.mark.timeout(120)

PackageFactory = Callable[..., bytes]

PKG_FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="ui_pkg_flow", package="ui_pkg")
class ui_pkg_flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        context.insert("greeting", "hello")
"""


def diamond(name: Callable[[str], str]) -> str:
    flow_name = name("ui_diamond")

    @workflow(name=flow_name)
    class flow:
        @task()
        def first(context: Context) -> None:
            context.insert("n", 1)

        @task(dependencies=["first"])
        def left(context: Context) -> None:
            pass

        @task(dependencies=["first"])
        def right(context: Context) -> None:
            pass

        @task(dependencies=["left", "right"])
        def last(context: Context) -> None:
            pass

    return flow_name


def client_of(api: Api, who: str) -> TestClient:
    return sign_in(api, who, TestClient(api.client.app))


def graph_data(html: str) -> dict[str, object]:
    found = re.search(r'id="workflow-graph-data">(.*?)</script>', html, re.S)
    assert found, "no graph data on the page"
    data: dict[str, object] = json.loads(found.group(1))
    return data


def test_workflow_pages_by_role_and_the_start_form(db_url: str, name: Callable[[str], str]) -> None:
    with running_api(db_url) as api:
        flow = diamond(name)
        runner = api.state.primary
        done = runner.execute(flow, {})
        assert done.status.value == "completed"

        viewer = client_of(api, "viewer")
        listing = viewer.get("/workflows")
        assert listing.status_code == 200
        row = re.search(rf'<tr data-workflow="{flow}">(.*?)</tr>', listing.text, re.S)
        assert row and "<td data-tasks>4</td>" in row.group(1)
        assert "completed" in row.group(1)

        page = viewer.get(f"/workflows/{flow}")
        assert page.status_code == 200
        data = graph_data(page.text)
        assert [n["id"] for n in data["nodes"]] == ["first", "left", "right", "last"]  # type: ignore[attr-defined]
        assert ["first", "left"] in data["edges"]  # type: ignore[operator]
        critical = data["critical"]
        assert isinstance(critical, list) and critical[0] == "first" and critical[-1] == "last"
        assert 'id="workflow-stats"' in page.text and "Failure rate" in page.text
        assert f'href="/runs/{done.execution_id}"' in page.text
        assert 'id="start-form"' not in page.text  # a viewer starts nothing

        # A viewer's post with a valid token is refused, and starts nothing.
        before = runner.count_executions(workflow_name=flow)["completed"]
        forged = viewer.post(
            f"/workflows/{flow}/start",
            data={"csrf": csrf_of(page.text), "context": "{}"},
            follow_redirects=False,
        )
        assert forged.status_code == 403
        assert sum(runner.count_executions(workflow_name=flow).values()) == before

        operator = client_of(api, "operator")
        page = operator.get(f"/workflows/{flow}")
        token = csrf_of(page.text)
        assert 'id="start-form"' in page.text
        for data_in, needle in (
            ('{"a": ', "not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
        ):
            bad = operator.post(
                f"/workflows/{flow}/start",
                data={"csrf": token, "context": data_in},
                follow_redirects=False,
            )
            assert bad.status_code == 400 and needle in bad.text, bad.text
            assert 'id="start-form"' in bad.text  # the page again, the text kept
        # The engine's own refusal of a context it cannot store is shown too.
        deep = "[" * 300 + "]" * 300
        refused = operator.post(
            f"/workflows/{flow}/start",
            data={"csrf": token, "context": '{"deep": ' + deep + "}"},
            follow_redirects=False,
        )
        assert refused.status_code == 400 and 'class="error"' in refused.text
        assert "nests objects and arrays more than 100 levels" in refused.text
        assert sum(runner.count_executions(workflow_name=flow).values()) == before

        for forged_data in ({"context": "{}"}, {"csrf": "0" * 64, "context": "{}"}):
            no = operator.post(f"/workflows/{flow}/start", data=forged_data, follow_redirects=False)
            assert no.status_code == 403

        started = operator.post(
            f"/workflows/{flow}/start",
            data={"csrf": token, "context": '{"who": "ui"}'},
            follow_redirects=False,
        )
        assert started.status_code == 303, started.text
        execution_id = started.headers["location"].rsplit("/", 1)[1]
        assert runner.wait(execution_id, timeout=30).status.value == "completed"
        assert runner.get_execution(execution_id).input_context == {"who": "ui"}
        audit = runner.list_audit(action="run.start").items
        mine = [a for a in audit if a.target == execution_id]
        assert mine and mine[0].outcome == "ok" and "operator" in str(mine[0].actor)

        missing = operator.get(f"/workflows/{flow}x")
        assert missing.status_code == 404 and flow in missing.text  # names the nearest
        nothing = operator.post(
            f"/workflows/{flow}x/start", data={"csrf": token, "context": ""}, follow_redirects=False
        )
        assert nothing.status_code == 404


def test_packages_page_upload_refusal_and_delete(
    db_url: str, tmp_path: Path, make_package: PackageFactory
) -> None:
    data = make_package(
        tmp_path,
        "ui_pkg",
        "1.0.0",
        {"ui_pkg/__init__.py": "", "ui_pkg/flows.py": PKG_FLOW},
        ["ui_pkg.flows"],
    )
    with running_api(db_url, execute=False) as api:
        runner = api.state.primary
        viewer = client_of(api, "viewer")
        empty = viewer.get("/packages")
        assert empty.status_code == 200 and 'id="no-packages"' in empty.text
        assert 'id="upload-form"' not in empty.text
        token = csrf_of(empty.text)
        files = {"package": ("ui_pkg.cloacina", data, "application/octet-stream")}
        for who in ("viewer", "operator"):
            client = viewer if who == "viewer" else client_of(api, "operator")
            own = csrf_of(client.get("/packages").text)
            forged = client.post(
                "/packages", data={"csrf": own}, files=files, follow_redirects=False
            )
            assert forged.status_code == 403 and "admin role" in forged.text
        assert runner.list_packages() == []

        admin = client_of(api, "admin")
        page = admin.get("/packages")
        token = csrf_of(page.text)
        assert 'id="upload-form"' in page.text and "data-dropzone" in page.text
        no_token = admin.post("/packages", files=files, follow_redirects=False)
        assert no_token.status_code == 403

        created = admin.post("/packages", data={"csrf": token}, files=files)
        assert created.status_code == 201, created.text
        assert "Verified and registered ui_pkg 1.0.0 (unsigned)" in created.text
        assert 'data-package="ui_pkg" data-version="1.0.0"' in created.text
        assert 'href="/workflows/ui_pkg_flow"' in created.text
        again = admin.post("/packages", data={"csrf": token}, files=files)
        assert again.status_code == 200 and "registered already" in again.text

        bad = {"package": ("bad.cloacina", b"this is not an archive", "application/octet-stream")}
        refused = admin.post("/packages", data={"csrf": token}, files=bad)
        assert refused.status_code == 422, refused.text
        reason = re.search(r"<strong>Refused:</strong>(.*?)</div>", refused.text, re.S)
        assert reason and "not a .cloacina package" in reason.group(1), refused.text
        nothing = admin.post("/packages", data={"csrf": token})
        assert nothing.status_code == 422 and "choose a .cloacina package" in nothing.text

        workflows = admin.get("/workflows/ui_pkg_flow")
        assert workflows.status_code == 200 and 'data-version="' in workflows.text
        assert "unsigned" in workflows.text and ">default<" in workflows.text

        for client in (viewer, client_of(api, "operator")):
            forged = client.post(
                "/packages/ui_pkg/1.0.0/delete",
                data={"csrf": csrf_of(client.get("/packages").text)},
                follow_redirects=False,
            )
            assert forged.status_code == 403
        assert len(runner.list_packages()) == 1

        deleted = admin.post(
            "/packages/ui_pkg/1.0.0/delete", data={"csrf": token}, follow_redirects=False
        )
        assert deleted.status_code == 303
        after = admin.get(deleted.headers["location"])
        assert "Deleted ui_pkg 1.0.0." in after.text and 'id="no-packages"' in after.text
        gone = admin.post(
            "/packages/ui_pkg/1.0.0/delete", data={"csrf": token}, follow_redirects=False
        )
        assert gone.status_code == 404
        actions = [a.action for a in runner.list_audit().items]
        assert "package.register" in actions and "package.delete" in actions


def test_an_upload_past_the_limit_is_refused_with_the_setting_named(db_url: str) -> None:
    with running_api(db_url, execute=False, max_upload_bytes=2000) as api:
        admin = client_of(api, "admin")
        token = csrf_of(admin.get("/packages").text)
        # Past the limit once read, and announced so large that it is not read at all.
        for size in (3000, 200_000):
            files = {"package": ("big.cloacina", b"x" * size, "application/octet-stream")}
            answer = admin.post("/packages", data={"csrf": token}, files=files)
            assert answer.status_code == 413, (size, answer.text)
            assert "larger than this server accepts (2000 bytes" in answer.text
            assert "max_upload_bytes" in answer.text
        assert api.state.primary.list_packages() == []
