"""``/api/v1/executions``: start runs, list and read them, follow their events, control them,
read their tasks' logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from cloacina.errors import RequestError, WorkflowNotFoundError
from cloacina.server.auth import OPERATOR, VIEWER, Caller
from cloacina.server.events import event_json, event_stream, open_stream, until_stopped
from cloacina.server.views import attempt_json, result_json, summary_json

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StartExecution(BaseModel):
    """``POST /api/v1/executions``: the workflow to run and its input context."""

    workflow: str = Field(min_length=1, description="a workflow name (package::name@version)")
    context: dict[str, Any] = Field(default_factory=dict, description="the input context")


class CancelBody(BaseModel):
    reason: str | None = Field(default=None, description="why (the run's error)")


class RerunBody(BaseModel):
    """``POST /api/v1/executions/{id}/rerun``: what to run again (DESIGN §11)."""

    tasks: list[str] | None = Field(default=None, description="task ids (null: the failed ones)")
    downstream: bool = Field(default=True, description="their dependents too, transitively")
    context: dict[str, Any] | None = Field(
        default=None, description="merged over the input of the rerun's first tasks"
    )
    version: str | None = Field(default=None, description="another registered version")


class RerunFailedBody(BaseModel):
    """``POST /api/v1/executions/rerun-failed``: the failed runs to rerun."""

    workflow: str | None = Field(default=None, description="only this workflow's runs")
    since: str | None = Field(default=None, description="created at or after (ISO 8601)")


def parse_time(field: str, value: str | None) -> datetime | None:
    """A query's time: ISO 8601 (``Z`` or an offset; no offset is UTC) or epoch seconds."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(
            f"{field} must be an ISO 8601 time such as 2026-01-31T12:00:00Z (or epoch "
            f"seconds), not {value!r}",
            field=field,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.post("", status_code=201, summary="Start a run")
async def start_execution(
    body: StartExecution,
    caller: Annotated[Caller, Depends(OPERATOR)],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Start a run of ``workflow`` with ``context``; 201 with its id at once. With an
    ``Idempotency-Key`` header some run of the tenant holds already: 200 and that run's id
    (409 if it was started with another workflow or context)."""
    runner = caller.runner
    try:
        execution_id, created = await caller.run(
            runner.start_run, body.workflow, body.context, idempotency_key
        )
    except WorkflowNotFoundError:
        # The service's lookup names the nearest known workflow.
        await run_in_threadpool(runner.describe_workflow, body.workflow)
        raise
    if not created:
        held = await run_in_threadpool(runner.get_execution_summary, execution_id)
        return JSONResponse({"execution_id": execution_id, "status": str(held.status)})
    return JSONResponse({"execution_id": execution_id, "status": "running"}, status_code=201)


@router.post("/rerun-failed", summary="Rerun the failed runs of a workflow")
async def rerun_failed(
    caller: Annotated[Caller, Depends(OPERATOR)],
    body: Annotated[RerunFailedBody | None, Body()] = None,
) -> JSONResponse:
    """Rerun the failed tasks (and their dependents) of every failed run of ``workflow``
    created since ``since``; the ids rerun, oldest first."""
    wanted = body or RerunFailedBody()
    since = parse_time("since", wanted.since)
    ids = await caller.run(caller.runner.rerun_failed, wanted.workflow, since)
    return JSONResponse({"items": ids})


@router.get("", summary="List runs, newest first")
async def list_executions(
    caller: Annotated[Caller, Depends(VIEWER)],
    status: str | None = None,
    workflow: str | None = None,
    since: str | None = None,
    until: str | None = None,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> JSONResponse:
    page = await run_in_threadpool(
        lambda: caller.runner.list_executions_page(
            status=status or None,
            workflow_name=workflow or None,
            since=parse_time("since", since),
            until=parse_time("until", until),
            q=q or None,
            limit=limit,
            cursor=cursor or None,
        )
    )
    return JSONResponse(
        {"items": [summary_json(r) for r in page.items], "next_cursor": page.next_cursor}
    )


@router.get("/{execution_id}", summary="A run, with its tasks")
async def get_execution(
    execution_id: str,
    caller: Annotated[Caller, Depends(VIEWER)],
    match: Annotated[Literal["exact", "prefix"], Query()] = "exact",
) -> JSONResponse:
    """``match=prefix`` also finds the only run whose id starts with ``execution_id`` (the
    short ids lists show; 400 naming some runs when several do)."""
    find = caller.runner.find_execution if match == "prefix" else caller.runner.get_execution
    result = await run_in_threadpool(find, execution_id)
    return JSONResponse(result_json(result))


@router.get("/{execution_id}/attempts", summary="Every attempt of every task of a run")
async def get_attempts(
    execution_id: str, caller: Annotated[Caller, Depends(VIEWER)]
) -> JSONResponse:
    attempts = await run_in_threadpool(caller.runner.get_attempts, execution_id)
    return JSONResponse({"items": [attempt_json(a) for a in attempts]})


def _last_event_id(value: str | None, after: int) -> int:
    if value is None or value.strip() == "":
        return after
    try:
        seq = int(value)
    except ValueError:
        raise RequestError(
            f"Last-Event-ID must be an event's sequence number, not {value!r}",
            field="Last-Event-ID",
        ) from None
    return max(seq, after)


@router.get(
    "/{execution_id}/events",
    summary="A run's events (Server-Sent Events with Accept: text/event-stream)",
)
async def get_events(
    request: Request,
    execution_id: str,
    caller: Annotated[Caller, Depends(VIEWER)],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """With ``Accept: text/event-stream``: Server-Sent Events (``id`` the event's sequence
    number, ``event`` its type, ``data`` JSON), from after ``Last-Event-ID`` (or ``after``),
    ending after the run's terminal event. Otherwise the events stored now, as JSON."""
    runner = caller.runner
    if "text/event-stream" not in request.headers.get("accept", ""):
        events = await run_in_threadpool(runner.get_events, execution_id, after, limit)
        return JSONResponse({"items": [event_json(e) for e in events]})
    start = _last_event_id(last_event_id, after)
    hub = request.app.state.cloacina_hubs.of(runner)
    # Subscribed and the history read now: an unknown run is a 404 before the stream.
    opened = await open_stream(runner, hub, execution_id, start)
    queue = opened[0]
    frames = event_stream(runner, hub, execution_id, start, opened, caller.state.stopping.is_set)
    # If the client is gone before the stream starts, the background task unsubscribes.
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(hub.unsubscribe, execution_id, queue),
    )


async def _control(caller: Caller, action: str, execution_id: str, **kwargs: Any) -> JSONResponse:
    await caller.run(getattr(caller.runner, action), execution_id, **kwargs)
    return JSONResponse({"execution_id": execution_id, "action": action}, status_code=202)


@router.post("/{execution_id}/cancel", status_code=202, summary="Cancel a run")
async def cancel(
    execution_id: str,
    caller: Annotated[Caller, Depends(OPERATOR)],
    body: Annotated[CancelBody | None, Body()] = None,
) -> JSONResponse:
    reason = body.reason if body is not None else None
    return await _control(caller, "cancel", execution_id, reason=reason)


@router.post("/{execution_id}/rerun", status_code=202, summary="Rerun tasks of a run that ended")
async def rerun(
    execution_id: str,
    caller: Annotated[Caller, Depends(OPERATOR)],
    body: Annotated[RerunBody | None, Body()] = None,
) -> JSONResponse:
    wanted = body or RerunBody()
    return await _control(
        caller,
        "rerun",
        execution_id,
        tasks=wanted.tasks,
        downstream=wanted.downstream,
        context=wanted.context,
        version=wanted.version,
    )


@router.post("/{execution_id}/pause", status_code=202, summary="Pause a run")
async def pause(execution_id: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    return await _control(caller, "pause", execution_id)


@router.post("/{execution_id}/resume", status_code=202, summary="Resume a paused run")
async def resume(execution_id: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    return await _control(caller, "resume", execution_id)


@router.get(
    "/{execution_id}/tasks/{task_id}/logs",
    summary="A task's captured output (text; follow=true streams it until the attempt ends)",
    response_class=PlainTextResponse,
)
async def get_task_logs(
    execution_id: str,
    task_id: str,
    caller: Annotated[Caller, Depends(VIEWER)],
    attempt: Annotated[int | None, Query(ge=1)] = None,
    follow: bool = False,
) -> Response:
    runner = caller.runner
    if not follow:
        text = await run_in_threadpool(runner.get_task_logs, execution_id, task_id, attempt)
        return PlainTextResponse(text)
    # The await raises an unknown run, task or attempt (404) before the stream starts.
    pieces = await runner.follow_task_logs_async(execution_id, task_id, attempt)
    stopping = caller.state.stopping.is_set

    async def body() -> AsyncIterator[bytes]:
        async for text in until_stopped(pieces, stopping):
            yield text.encode()

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8", headers=SSE_HEADERS)


__all__ = ["router"]
