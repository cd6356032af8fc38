"""The runs page's live feed: a Server-Sent Events stream of every run's start and status
changes in the signed-in tenant, authenticated by the session cookie (EventSource cannot
send an Authorization header). It listens on the tenant's event hub, as the API's streams
do: one database read per poll for all listeners, no polling by the page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from cloacina.server.events import ALL_RUNS, KEEPALIVE
from cloacina.server.ui.session import viewer_of

router = APIRouter(include_in_schema=False)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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
            while not state.stopping.is_set():
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


PATHS = frozenset({"/ui/events"})

__all__ = ["PATHS", "router"]
