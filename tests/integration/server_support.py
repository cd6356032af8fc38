"""Helpers of the HTTP API tests: the real app (``cloacina.server.create_app``) over a real
database, reached through starlette's TestClient (real HTTP semantics, in process), with one
API key per role, a key bound to another tenant, and the fast settings of the integration
tests."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from cloacina.server import ServerOptions, ServerState, create_app
from cloacina.service.tenants import create_tenant
from cloacina.settings import Settings

from .conftest import FAST

#: The callers of the authorisation tests.
ROLES = ("viewer", "operator", "admin")


@dataclass
class Api:
    """A running API: its client, state, database URL, and a key per caller."""

    client: TestClient
    state: ServerState
    url: str
    other_tenant: str
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str | None, **extra: str) -> dict[str, str]:
        """Headers of caller ``who``: a role, ``other`` (an admin of another tenant),
        ``bad`` (a key that does not exist) or None (no key)."""
        headers = dict(extra)
        if who == "bad":
            headers["Authorization"] = "Bearer clk_" + "x" * 43
        elif who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return headers

    def call(self, method: str, path: str, who: str | None = "admin", **kwargs: Any) -> Any:
        headers = self.auth(who, **kwargs.pop("headers", {}))
        return self.client.request(method, path, headers=headers, **kwargs)


def unique_tenant() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@contextmanager
def running_api(
    url: str,
    *,
    execute: bool = True,
    auth: bool = True,
    tenant: str = "public",
    **settings: Any,
) -> Iterator[Api]:
    """The API over ``url`` serving ``tenant``, with keys ``viewer``, ``operator``,
    ``admin`` (every tenant) and ``other`` (an admin bound to a tenant of its own)."""
    other = unique_tenant()
    create_tenant(url, other)
    options = ServerOptions(
        url=url,
        tenant=tenant,
        execute=execute,
        auth=auth,
        settings=Settings.resolve({**FAST, **settings}),
    )
    state = ServerState(options)
    app = create_app(state, close_state=True)
    primary = state.primary
    keys = {role: primary.create_api_key(f"test-{role}", role).key for role in ROLES}
    keys["other"] = primary.create_api_key("test-other", "admin", tenant=other).key
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, state, url, other, keys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Live:
    """A real uvicorn server on a free loopback port, in a thread of this process."""

    base: str
    port: int
    api: Api


@contextmanager
def live_server(url: str, *, execute: bool = True, **settings: Any) -> Iterator[Live]:
    """Like :func:`running_api`, served by uvicorn over real sockets."""
    import uvicorn

    with running_api(url, execute=execute, **settings) as api:
        port = free_port()
        config = uvicorn.Config(
            api.client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        try:
            yield Live(f"http://127.0.0.1:{port}", port, api)
        finally:
            api.state.stopping.set()
            server.should_exit = True
            thread.join(15)
