"""The web UI (DESIGN §12), served by the API's own app: :func:`install` adds its pages,
its live feed and its static files (all shipped inside the wheel: no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cloacina.server.ui import (
    live,
    pages,
    pages_audit,
    pages_packages,
    pages_workers,
    pages_workflows,
)
from cloacina.server.ui.session import Sessions

STATIC = Path(__file__).parent / "static"

#: Paths of the UI's routes: reached with the session cookie, never an API key.
PATHS = (
    pages.PATHS
    | live.PATHS
    | pages_workers.PATHS
    | pages_audit.PATHS
    | pages_workflows.PATHS
    | pages_packages.PATHS
)


def install(app: FastAPI) -> None:
    """Serve the UI from ``app``: pages at ``/``, ``/runs``..., files at ``/static``."""
    app.state.cloacina_ui_sessions = Sessions()
    app.include_router(pages.router)
    app.include_router(live.router)
    app.include_router(pages_workers.router)
    app.include_router(pages_audit.router)
    app.include_router(pages_workflows.router)
    app.include_router(pages_packages.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")


__all__ = ["PATHS", "install"]
