"""The UI's live feeds. The runs page's: a Server-Sent Events stream of every run's start and status
changes in the signed-in tenant, authenticated by the session cookie (EventSource cannot
send an Authorization header). It listens on the tenant's event hub, as the API's streams
do: one database read per poll for all listeners, no polling by the page. A run page's:
its own run's changes, ending with the run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from cloacina.errors import NotFoundError
from cloacina.server.events import ALL_RUNS, KEEPALIVE, TASK_STATUS_AFTER, TERMINAL_EVENTS
from cloacina.server.ui.session import viewer_of

router = APIRouter(include_in_schema=False)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Seconds between two checks that the runs feed's session is still signed in.
RECHECK = KEEPALIVE


@router.get("/ui/events")
async def run_events(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    hub = request.app.state.cloacina_hubs.of(viewer.runner)
    queue = await hub.subscribe(ALL_RUNS)
    state = request.app.state.cloacina

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": open\n\n"
            idle = 0.0
            checked = time.monotonic()
            while not state.stopping.is_set():
                if time.monotonic() - checked >= RECHECK:
                    checked = time.monotonic()
                    if await viewer_of(request) is None:
                        return  # signed out, or the key was revoked: no more news
                try:
                    event = await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    idle += 0.5
                    if idle >= KEEPALIVE:
                        idle = 0.0
                        yield b": keepalive\n\n"
                    continue
                idle = 0.0
                if not event.type.startswith("execution_"):
                    continue  # task events do not change the list's rows
                data = json.dumps({"execution_id": event.execution_id, "type": event.type})
                yield f"id: {event.seq}\nevent: run\ndata: {data}\n\n".encode()
        finally:
            hub.unsubscribe(ALL_RUNS, queue)

    # If the client is gone before the stream starts, the background task unsubscribes.
    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers=HEADERS,
        background=BackgroundTask(hub.unsubscribe, ALL_RUNS, queue),
    )


@router.get("/ui/runs/{execution_id}/events")
async def one_run_events(request: Request, execution_id: str) -> Response:
    """A run's changes (``change``; ``end`` after its terminal event) for its page, each
    task event with the task's new status so the page shows it without a read."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    hub = request.app.state.cloacina_hubs.of(viewer.runner)
    queue = await hub.subscribe(execution_id)
    try:
        await run_in_threadpool(viewer.runner.get_execution_status, execution_id)
    except NotFoundError:
        hub.unsubscribe(execution_id, queue)
        return Response(status_code=404)
    state = request.app.state.cloacina

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": open\n\n"
            idle = 0.0
            while not state.stopping.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    idle += 0.5
                    if idle >= KEEPALIVE:
                        idle = 0.0
                        yield b": keepalive\n\n"
                        if await viewer_of(request) is None:
                            return  # signed out, or the key was revoked
                        status = await run_in_threadpool(
                            viewer.runner.get_execution_status, execution_id
                        )
                        if status.is_terminal:  # its end came by another way: say so
                            yield b"event: end\ndata: {}\n\n"
                            return
                    continue
                idle = 0.0
                kind = "end" if event.type in TERMINAL_EVENTS else "change"
                change = {"type": event.type, "task_id": event.task_id}
                if event.type in TASK_STATUS_AFTER:
                    change["status"] = TASK_STATUS_AFTER[event.type]
                data = json.dumps(change)
                yield f"id: {event.seq}\nevent: {kind}\ndata: {data}\n\n".encode()
                if kind == "end":
                    return
        finally:
            hub.unsubscribe(execution_id, queue)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers=HEADERS,
        background=BackgroundTask(hub.unsubscribe, execution_id, queue),
    )


@router.get("/ui/runs/{execution_id}/tasks/{task_id}/logs")
async def follow_logs(request: Request, execution_id: str, task_id: str) -> Response:
    """An attempt's logs as they come (``log`` frames of text from its start, then ``end``
    when the attempt ends), for a task's panel: the API's follow, by session cookie."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    try:
        attempt = int(request.query_params.get("attempt") or 0) or None
        pieces = await viewer.runner.follow_task_logs_async(execution_id, task_id, attempt)
    except ValueError:
        return Response(status_code=400)
    except NotFoundError:
        return Response(status_code=404)
    state = request.app.state.cloacina

    async def frames() -> AsyncIterator[bytes]:
        yield b": open\n\n"
        async for text in pieces:
            if state.stopping.is_set():
                return
            yield f"event: log\ndata: {json.dumps({'text': text})}\n\n".encode()
        yield b"event: end\ndata: {}\n\n"

    return StreamingResponse(frames(), media_type="text/event-stream", headers=HEADERS)


PATHS = frozenset(
    {"/ui/events", "/ui/runs/{execution_id}/events", "/ui/runs/{execution_id}/tasks/{task_id}/logs"}
)

__all__ = ["PATHS", "router"]
