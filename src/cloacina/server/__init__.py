"""The HTTP API of DESIGN §9 (FastAPI; ``pip install cloacina[server]``).

:func:`create_app` builds the application over a :class:`ServerState` (one runner per
tenant); :func:`~cloacina.server.serve.serve` runs it with uvicorn (``cloacina serve``).
The routes call the service layer (methods of :class:`~cloacina.runner.DefaultRunner`),
never the store.
"""

from __future__ import annotations

from cloacina.server.app import create_app
from cloacina.server.state import ServerOptions, ServerState

__all__ = ["ServerOptions", "ServerState", "create_app"]
