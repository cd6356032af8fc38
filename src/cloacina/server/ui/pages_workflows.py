"""The web UI's workflow pages (DESIGN §12, issue 11): every workflow the tenant can run,
and one workflow's graph (critical path highlighted), version history, recent runs, stats
and, for operators, a form that starts a run. Reads and the start go through the tenant's
runner (the service API), as ``/api/v1/workflows`` and ``/api/v1/executions`` do."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloacina.errors import CloacinaError, NotFoundError, RequestError
from cloacina.model.status import WorkflowResult
from cloacina.registry.registry import PackageInfo
from cloacina.server.ui.pages import page, refuse_post, to_signin
from cloacina.server.ui.session import Viewer, viewer_of
from cloacina.service.audit import acting_as
from cloacina.service.stats import WorkflowStats
from cloacina.service.types import WorkflowInfo

router = APIRouter(include_in_schema=False)

#: Runs of a workflow listed on its page (the runs page pages through all of them).
RECENT_RUNS = 20
#: Finished runs the page's statistics are computed over (the API's default).
STATS_RUNS = 100
#: The window of the workflows list's run counts.
RECENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Version:
    """One registered version of a workflow: from which package version, when, and whether
    new runs take it."""

    version: str
    package: str
    package_version: str
    registered_at: datetime
    default: bool
    signer: str | None


@dataclass
class Row:
    """A line of the workflows list."""

    info: WorkflowInfo
    versions: int
    counts: dict[str, int] = field(default_factory=dict)


def versions_of(name: str, packages: list[PackageInfo]) -> list[Version]:
    """The registered versions of workflow ``name``, newest registration first (empty for a
    workflow defined in the server's process, which has no package)."""
    found = []
    for p in packages:
        if name not in p.workflows:
            continue
        version = dict(p.workflow_versions).get(name, p.version)
        registered = datetime.fromtimestamp(p.registered_at, tz=UTC)
        found.append(Version(version, p.package, p.version, registered, p.default, p.signer))
    return sorted(found, key=lambda v: v.registered_at, reverse=True)


def parse_context(text: str) -> dict[str, Any]:
    """The start form's context: a JSON object (blank is ``{}``); :class:`RequestError`
    says what is wrong and where."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"the context is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="context",
        ) from None
    if not isinstance(value, dict):
        raise RequestError(
            f"the context must be a JSON object ({{...}}), not {type(value).__name__}",
            field="context",
        )
    return value


def graph_spec(info: WorkflowInfo, stats: WorkflowStats | None) -> dict[str, Any]:
    """What ``CloacinaDag.draw`` takes: the tasks, their edges, the critical path."""
    by_task = {t.task_id: t for t in stats.tasks} if stats is not None else {}
    critical = list(stats.critical_path) if stats is not None else []
    nodes = []
    for t in info.tasks:
        ts = by_task.get(t.id)
        words = ["critical"] if t.id in critical else []  # a word, not only a thicker line
        if ts is not None and ts.duration_p50 is not None:
            words.append(f"p50 {ts.duration_p50:.3f} s")
        nodes.append({"id": t.id, "sub": " · ".join(words)} if words else {"id": t.id})
    edges = [[d, t.id] for t in info.tasks for d in t.dependencies]
    return {"nodes": nodes, "edges": edges, "critical": critical}


def embed(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/workflows")
async def workflows_page(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()

    def read() -> list[Row]:
        runner = viewer.runner
        packages = runner.list_packages()
        since = datetime.now(UTC) - RECENT_WINDOW
        rows = []
        for info in sorted(runner.describe_workflows(), key=lambda w: w.name):
            versions = len(versions_of(info.name, packages)) or 1
            counts = runner.count_executions(workflow_name=info.name, since=since)
            rows.append(Row(info, versions, {k: v for k, v in counts.items() if v}))
        return rows

    rows = await run_in_threadpool(read)
    return page(request, "workflows.html", viewer=viewer, rows=rows)


def workflow_view(viewer: Viewer, name: str) -> dict[str, Any]:
    """Everything a workflow's page shows (NotFoundError naming the nearest workflow)."""
    runner = viewer.runner
    info = runner.describe_workflow(name)
    stats = runner.workflow_stats(info.name, STATS_RUNS)
    runs: list[WorkflowResult] = runner.list_executions_page(
        workflow_name=info.name, limit=RECENT_RUNS
    ).items
    versions = versions_of(info.name, runner.list_packages())
    return {
        "info": info,
        "stats": stats,
        "runs": runs,
        "versions": versions,
        "spec": embed(graph_spec(info, stats)),
    }


@router.get("/workflows/{name}")
async def workflow_page(request: Request, name: str) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    try:
        shown = await run_in_threadpool(workflow_view, viewer, name)
    except NotFoundError as exc:
        return page(request, "message.html", status=404, viewer=viewer, message=str(exc))
    return page(request, "workflow.html", viewer=viewer, context_text="", error=None, **shown)


@router.post("/workflows/{name}/start")
async def start_run(
    request: Request,
    name: str,
    csrf: Annotated[str, Form()] = "",
    context: Annotated[str, Form()] = "",
) -> Response:
    """Start a run of ``name`` with the form's JSON context (audited as the API's start),
    then show the new run's page; a bad context shows the page again with the reason."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    refused = refuse_post(request, viewer, csrf, "operator", "Starting a run")
    if refused is not None:
        return refused
    actor = viewer.identity.actor

    def start() -> str:
        values = parse_context(context)
        viewer.runner.describe_workflow(name)  # NotFoundError names the nearest
        with acting_as(actor):
            return viewer.runner.schedule_workflow(name, values)

    try:
        execution_id = await run_in_threadpool(start)
    except NotFoundError as exc:
        return page(request, "message.html", status=404, viewer=viewer, message=str(exc))
    except CloacinaError as exc:
        try:
            shown = await run_in_threadpool(workflow_view, viewer, name)
        except NotFoundError as missing:
            message = str(missing)
            return page(request, "message.html", status=404, viewer=viewer, message=message)
        return page(
            request,
            "workflow.html",
            status=400,
            viewer=viewer,
            context_text=context,
            error=str(exc),
            **shown,
        )
    return RedirectResponse(f"/runs/{quote(execution_id)}", status_code=303)


#: The workflow pages' paths (reached with the session cookie, not an API key).
PATHS = frozenset({"/workflows", "/workflows/{name}", "/workflows/{name}/start"})

__all__ = ["PATHS", "parse_context", "router", "versions_of"]
