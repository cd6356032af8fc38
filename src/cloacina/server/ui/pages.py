"""The web UI's pages (DESIGN §12): sign in and out, the runs list, a run's page and its
control buttons. Every read and action goes through the tenant's runner (the service
layer), as the API's routes do."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cloacina.errors import CloacinaError, NotFoundError, RequestError
from cloacina.model.context import deep_merge
from cloacina.model.status import ExecutionStatus, TaskResult, WorkflowResult
from cloacina.server.auth import state_of
from cloacina.server.routes_executions import parse_time
from cloacina.server.ui import jsonview
from cloacina.server.ui.run_state import run_state
from cloacina.server.ui.session import (
    Viewer,
    clear_cookie,
    identify,
    sessions_of,
    set_cookie,
    viewer_of,
)
from cloacina.service.audit import acting_as

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

STATUSES = [s.value for s in ExecutionStatus]
ACTIONS = ("cancel", "pause", "resume", "rerun")


#: Scripts and styles only from this server, no framing (clickjacking of the buttons),
#: forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers=SECURITY_HEADERS
    )


def same_origin(request: Request) -> bool:
    """Whether a form post came from this site: a browser names the page's origin in
    ``Origin``; a post naming another is refused (CSRF, the sign-in form's included)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # Behind a proxy that rewrites Host, the forwarded host is the one the browser saw.
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return origin.split("://", 1)[-1] in hosts


def to_signin() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


@router.get("/")
async def signin_page(request: Request) -> Response:
    if await viewer_of(request) is not None:
        return RedirectResponse("/runs", status_code=303)
    return page(request, "signin.html", viewer=None, error=None)


@router.post("/")
async def signin(request: Request, api_key: Annotated[str, Form()] = "") -> Response:
    if not same_origin(request):
        return forbidden(request, None)
    key = api_key.strip()
    try:
        if not key and state_of(request).options.auth:
            raise RequestError("enter an API key")
        await identify(request, key)
    except CloacinaError:
        error = "That API key was not accepted (unknown, revoked or expired)."
        return page(request, "signin.html", status=401, viewer=None, error=error)
    sessions = sessions_of(request)
    session = sessions.create(key)
    response = RedirectResponse("/runs", status_code=303)
    set_cookie(request, response, session, sessions.ttl)
    return response


@router.post("/signout")
async def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    viewer = await viewer_of(request)
    if viewer is not None:
        if not same_origin(request) or not sessions_of(request).csrf_ok(viewer.session, csrf):
            return forbidden(request, viewer)
        sessions_of(request).drop(viewer.session.sid)
    response = to_signin()
    clear_cookie(request, response)
    return response


@router.post("/tenant")
async def switch_tenant(
    request: Request, tenant: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = ""
) -> Response:
    """Show another tenant (keys of every tenant only)."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    sessions = sessions_of(request)
    if not same_origin(request) or not sessions.csrf_ok(viewer.session, csrf):
        return forbidden(request, viewer)
    if not viewer.can_switch:
        message = f"This API key serves tenant {viewer.identity.key_tenant!r} only."
        return page(request, "message.html", status=403, viewer=viewer, message=message)
    if tenant not in await run_in_threadpool(state_of(request).primary.tenant_names):
        message = f"No tenant named {tenant!r}."
        return page(request, "message.html", status=404, viewer=viewer, message=message)
    sessions.switch(viewer.session, tenant)
    return RedirectResponse("/runs", status_code=303)


def forbidden(request: Request, viewer: Viewer | None) -> HTMLResponse:
    message = "This form has expired or did not come from this site; reload the page and retry."
    return page(request, "message.html", status=403, viewer=viewer, message=message)


def refuse_post(
    request: Request, viewer: Viewer, csrf: str, role: str, doing: str
) -> HTMLResponse | None:
    """The refusal of a form post that is forged (another origin, a missing or wrong CSRF
    token) or made with a role below ``role`` (``operator`` or ``admin``), naming what
    it was ``doing``; ``None`` when it may go ahead."""
    if not same_origin(request) or not sessions_of(request).csrf_ok(viewer.session, csrf):
        return forbidden(request, viewer)
    if not (viewer.is_admin if role == "admin" else viewer.can_operate):
        message = f"{doing} needs the {role} role; this key is a {viewer.identity.role}'s."
        return page(request, "message.html", status=403, viewer=viewer, message=message)
    return None


class Filters:
    """The runs page's filters, from its query string."""

    def __init__(self, request: Request) -> None:
        q = request.query_params
        self.status = q.get("status") or None
        self.workflow = q.get("workflow") or None
        self.since_text = q.get("since") or ""
        self.until_text = q.get("until") or ""
        self.q = q.get("q") or None
        self.cursor = q.get("cursor") or None
        self.since = self._time("since", self.since_text)
        self.until = self._time("until", self.until_text)

    @staticmethod
    def _time(field: str, value: str) -> datetime | None:
        # The browser's datetime-local has no zone: taken as UTC, as the API takes it.
        return parse_time(field, value) if value else None

    def query(self, **override: str | None) -> str:
        values = {
            "status": self.status,
            "workflow": self.workflow,
            "since": self.since_text,
            "until": self.until_text,
            "q": self.q,
        }
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v})

    def matches(self, run: WorkflowResult) -> bool:
        if self.status and run.status.value != self.status:
            return False
        if self.workflow and run.workflow_name != self.workflow:
            return False
        created = run.created_at
        if created is not None and self.since and created < self.since:
            return False
        if created is not None and self.until and created >= self.until:
            return False
        return not self.q or self.q in run.execution_id or self.q in (run.error or "")


def status_counts(viewer: Viewer, filters: Filters) -> dict[str, int]:
    """Runs per status under the page's other filters (one grouped read)."""
    return viewer.runner.count_executions(
        workflow_name=filters.workflow, since=filters.since, until=filters.until, q=filters.q
    )


@router.get("/runs")
async def runs_page(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    try:
        filters = Filters(request)
        if filters.status and filters.status not in STATUSES:
            raise RequestError(f"status must be one of {', '.join(STATUSES)}")
        found = await run_in_threadpool(
            lambda: viewer.runner.list_executions_page(
                status=filters.status,
                workflow_name=filters.workflow,
                since=filters.since,
                until=filters.until,
                q=filters.q,
                limit=int(request.query_params.get("limit") or 50),
                cursor=filters.cursor,
            )
        )
        counts = await run_in_threadpool(status_counts, viewer, filters)
    except (CloacinaError, ValueError) as exc:
        return page(request, "message.html", status=400, viewer=viewer, message=str(exc))
    next_query = filters.query(cursor=found.next_cursor) if found.next_cursor else None
    return page(
        request,
        "runs.html",
        viewer=viewer,
        runs=found.items,
        filters=filters,
        statuses=STATUSES,
        counts=counts,
        next_query=next_query,
        live=filters.cursor is None,
    )


@router.get("/ui/runs/rows")
async def run_rows(request: Request) -> Response:
    """The rows of the runs named in ``ids`` that match the page's filters (the live
    updates of the runs page fetch them)."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    filters = Filters(request)
    ids = [i for i in (request.query_params.get("ids") or "").split(",") if i][:100]

    def read() -> list[WorkflowResult]:
        runs = []
        for execution_id in ids:
            try:
                runs.append(viewer.runner.get_execution(execution_id))
            except NotFoundError:
                continue
        return runs

    runs = [r for r in await run_in_threadpool(read) if filters.matches(r)]
    counts = await run_in_threadpool(status_counts, viewer, filters)
    answer = page(request, "run_rows.html", viewer=viewer, runs=runs)
    answer.headers["X-Cloacina-Counts"] = json.dumps(counts, separators=(",", ":"))
    return answer


def state_of_run(viewer: Viewer, execution_id: str) -> dict[str, Any]:
    """What the run's page draws (tasks, graph, attempts): its own stored graph, not its
    workflow's current definition, which a run of an older version does not match."""
    return run_state(*viewer.runner.get_run_view(execution_id))


#: Up to this many tasks, a run's page comes with its task rows (as run.js draws them).
ROWS_IN_PAGE = 200


@router.get("/runs/{execution_id}")
async def run_page(request: Request, execution_id: str) -> Response:
    """A run's page: its facts and buttons here; its tasks, graph and Gantt chart drawn by
    its script from ``/ui/runs/{id}/state`` and kept live from the run's event stream."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    try:
        run = await run_in_threadpool(viewer.runner.get_execution_summary, execution_id)
        # A small run's rows come with the page (shown before its script has run, and
        # to clients that run none); a big run's list is drawn, windowed, by the script.
        rows = None
        if run.tasks_total <= ROWS_IN_PAGE:
            rows = (await run_in_threadpool(viewer.runner.get_execution, execution_id)).tasks
    except NotFoundError as exc:
        return page(request, "message.html", status=404, viewer=viewer, message=str(exc))
    notice = request.query_params.get("done")
    return page(request, "run.html", viewer=viewer, run=run, rows=rows, notice=notice)


@router.get("/ui/runs/{execution_id}/head")
async def run_head(request: Request, execution_id: str) -> Response:
    """The run's facts and buttons, fetched again when its status changes."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    try:
        run = await run_in_threadpool(viewer.runner.get_execution_summary, execution_id)
    except NotFoundError:
        return Response(status_code=404)
    return page(request, "run_head.html", viewer=viewer, run=run)


@router.get("/ui/runs/{execution_id}/state")
async def run_state_document(request: Request, execution_id: str) -> Response:
    """The run's tasks, graph and attempts as JSON, for its page's script."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    try:
        state = await run_in_threadpool(state_of_run, viewer, execution_id)
    except NotFoundError:
        return Response(status_code=404)
    return JSONResponse(state, headers={"Cache-Control": "no-store"})


Context = dict[str, Any] | None


def task_input(viewer: Viewer, run: WorkflowResult, task_id: str) -> Context:
    """What a task was given, as the engine builds it: the run's input for a task with no
    dependency, else its dependencies' outputs deep-merged in declared order (its stored
    dependencies: the run's own graph)."""
    deps = viewer.runner.get_run_graph(run.execution_id, task_id).get(task_id)
    if deps is None:
        return None
    if not deps:
        return run.input_context
    outputs = [viewer.runner.get_task_output(run.execution_id, d) for d in deps]
    return deep_merge(*(o for o in outputs if o is not None))


#: A task's panel shows the logs of its latest attempts only (older ones: the CLI/API).
PANEL_ATTEMPTS = 10


@router.get("/ui/runs/{execution_id}/tasks/{task_id}")
async def task_panel(request: Request, execution_id: str, task_id: str) -> Response:
    """A task's panel, fetched when the task is clicked: its attempts with their errors and
    tracebacks, and what each printed and logged."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)

    def read() -> tuple[WorkflowResult, TaskResult, list[tuple[Any, str]], tuple[Context, Context]]:
        run = viewer.runner.get_execution_summary(execution_id)
        task = viewer.runner.get_task(execution_id, task_id)
        if task.instances is not None:  # a mapped task: its instances are listed instead
            return run, task, [], (task_input(viewer, run, task_id), None)
        attempts = viewer.runner.get_attempts(execution_id, task_id)
        shown = []
        for attempt in attempts[-PANEL_ATTEMPTS:]:
            try:
                logs = viewer.runner.get_task_logs(execution_id, task_id, attempt.attempt)
            except CloacinaError:
                logs = ""
            shown.append((attempt, logs))
        if task_id.endswith("]"):  # a mapped task's instance ("process[7]"): its result
            result = viewer.runner.get_instance_result(execution_id, task_id)
            return run, task, shown, (None, None if result is None else {"result": result})
        output = viewer.runner.get_task_output(execution_id, task_id)
        return run, task, shown, (task_input(viewer, run, task_id), output)

    try:
        run, task, attempts, (given, output) = await run_in_threadpool(read)
    except NotFoundError:
        return Response(status_code=404)
    if task.instances is not None:
        output = await run_in_threadpool(viewer.runner.get_task_output, execution_id, task_id)
    return page(
        request,
        "task_panel.html",
        viewer=viewer,
        run=run,
        task=task,
        instances=INSTANCE_FILTERS if task.instances is not None else None,
        attempts=list(reversed(attempts)),
        output=None if output is None else jsonview.render(output),
        given=None if given is None else jsonview.render(given),
    )


#: The instance lists a mapped task's panel offers (status filter, label).
INSTANCE_FILTERS = (("", "all"), ("failed", "failed"), ("running", "running"))
#: Instances per page of a mapped task's list.
INSTANCES_PAGE = 100


@router.get("/ui/runs/{execution_id}/tasks/{task_id}/instances")
async def task_instances(request: Request, execution_id: str, task_id: str) -> Response:
    """A page of a mapped task's instances (after index ``after``, only ``status`` when
    given), as rows for its panel's list; each row opens that instance's own panel."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    try:
        after = int(request.query_params.get("after") or -1)
        status = request.query_params.get("status") or None
        found = await run_in_threadpool(
            lambda: viewer.runner.get_map_instances(
                execution_id, task_id, after=after, limit=INSTANCES_PAGE, status=status
            )
        )
    except NotFoundError:
        return Response(status_code=404)
    except (ValueError, RequestError):
        return Response(status_code=400)
    more = None
    if len(found) == INSTANCES_PAGE:
        more = urlencode({"after": found[-1].index, "status": status or ""})
    return page(
        request,
        "task_instances.html",
        viewer=viewer,
        run_id=execution_id,
        task_id=task_id,
        instances=found,
        more=more,
    )


#: How many of a run's events its page lists (the API pages through all of them).
EVENTS_SHOWN = 500


@router.get("/ui/runs/{execution_id}/log")
async def run_event_log(request: Request, execution_id: str) -> Response:
    """The run's events, oldest first, fetched when its page's Events section is opened."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    try:
        events = await run_in_threadpool(
            lambda: viewer.runner.get_events(execution_id, limit=EVENTS_SHOWN + 1)
        )
    except NotFoundError:
        return Response(status_code=404)
    return page(
        request,
        "run_events.html",
        viewer=viewer,
        events=events[:EVENTS_SHOWN],
        more=len(events) > EVENTS_SHOWN,
        execution_id=execution_id,
    )


@router.post("/runs/{execution_id}/{action}")
async def run_action(
    request: Request, execution_id: str, action: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    if action not in ACTIONS:
        return page(request, "message.html", status=404, viewer=viewer, message="no such action")
    refused = refuse_post(request, viewer, csrf, "operator", action.capitalize())
    if refused is not None:
        return refused
    method = getattr(viewer.runner, action)
    actor = viewer.identity.actor

    def act() -> None:
        with acting_as(actor):
            method(execution_id)

    try:
        await run_in_threadpool(act)
    except CloacinaError as exc:
        status = 404 if isinstance(exc, NotFoundError) else 409
        return page(request, "message.html", status=status, viewer=viewer, message=str(exc))
    return RedirectResponse(f"/runs/{execution_id}?done={action}", status_code=303)


#: The UI's paths (reached with the session cookie, not an API key).
PATHS = frozenset(
    {
        "/",
        "/signout",
        "/tenant",
        "/runs",
        "/ui/runs/rows",
        "/runs/{execution_id}",
        "/ui/runs/{execution_id}/head",
        "/ui/runs/{execution_id}/state",
        "/ui/runs/{execution_id}/tasks/{task_id}",
        "/ui/runs/{execution_id}/tasks/{task_id}/instances",
        "/ui/runs/{execution_id}/log",
        "/runs/{execution_id}/{action}",
    }
)

__all__ = ["PATHS", "router"]
