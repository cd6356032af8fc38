"""The FastAPI application: :func:`create_app` over a :class:`ServerState`.

Routes live in one module per concern (``routes_executions``, ``routes_packages``,
``routes_workflows``, ``routes_admin``); this module adds the probes (``/healthz``,
``/readyz``), ``/metrics``, the request id every answer carries (``X-Request-Id``), the JSON
error bodies, and the lifespan that closes event streams and runners when the server stops.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloacina._about import __version__
from cloacina.server import (
    errors,
    routes_admin,
    routes_backfills,
    routes_executions,
    routes_packages,
    routes_schedules,
    routes_triggers,
    routes_workflows,
    ui,
)
from cloacina.server.auth import VIEWER, Caller, KeyCache
from cloacina.server.events import Hubs
from cloacina.server.state import ServerState

REQUEST_ID_HEADER = "X-Request-Id"
#: A request id a client may choose (so its own logs and ours line up): short and plain.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

#: Routes anyone may call without a key (the probes and the API's own documentation), and
#: the web UI's, which authenticate by the session cookie a key signs in to.
PUBLIC_PATHS = (
    frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
    | ui.PATHS
)


class RequestIdMiddleware:
    """Gives every request an id (``request.state.request_id``, the audit rows' request id)
    and returns it in the ``X-Request-Id`` header. A client's own well-formed id is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _CLIENT_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def route_table(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route of an app, routers included (newer FastAPI keeps an included router as
    one entry of ``app.routes``; older versions copy its routes in)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from route_table(inner.routes)
        else:
            yield route


def create_app(state: ServerState, *, close_state: bool = False) -> FastAPI:
    """The HTTP API of DESIGN §9 over ``state`` (opened here if it was not). With
    ``close_state``, the app's shutdown also shuts the runners down (``cloacina serve``
    closes them itself, after the server stopped)."""
    state.open()
    hubs = Hubs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.stopping.set()
            await hubs.close()
            if close_state:
                await run_in_threadpool(state.close)

    app = FastAPI(
        title="Cloacina",
        version=__version__,
        description="Durable workflows: runs, packages, workflows, workers, keys and audit "
        "(DESIGN §9). Authenticate with `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
    )
    app.state.cloacina = state
    app.state.cloacina_hubs = hubs
    app.state.cloacina_keys = KeyCache()
    errors.install(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["probes"], summary="The process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["probes"], summary="The database answers, its schema is current")
    async def readyz() -> JSONResponse:
        ready = await run_in_threadpool(state.primary.database_ready)
        if ready:
            return JSONResponse({"status": "ready"})
        return errors.error_response(
            503,
            "unavailable",
            "the database does not answer or its schema is not this version's; see the "
            "server's log",
        )

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics")
    async def metrics(caller: Annotated[Caller, Depends(VIEWER)]) -> Response:
        text = await run_in_threadpool(caller.runner.metrics_text)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(routes_executions.router)
    app.include_router(routes_packages.router)
    app.include_router(routes_workflows.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_backfills.router)
    app.include_router(routes_schedules.router)
    app.include_router(routes_triggers.router)
    ui.install(app)
    return app


__all__ = ["PUBLIC_PATHS", "REQUEST_ID_HEADER", "create_app", "route_table"]
