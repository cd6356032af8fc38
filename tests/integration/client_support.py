"""A real server for the client tests: the FastAPI app under uvicorn in this process, on a
free loopback port, with an admin key and a submit-only runner on the same database (what
the client's answers are compared with). In this process, so that the workflows a test
defines are the server's too."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cloacina import Client, DefaultRunner

from .conftest import FAST


@dataclass
class Served:
    """A server on a database, an admin key for it, and a submit-only runner beside it."""

    base: str
    db_url: str
    key: str
    local: DefaultRunner
    clients: list[Client] = field(default_factory=list)

    def client(self, key: str | None = None, **kwargs: Any) -> Client:
        made = Client(self.base, api_key=self.key if key is None else key, **kwargs)
        self.clients.append(made)
        return made


def start_server(db_url: str) -> Iterator[Served]:
    import uvicorn

    from cloacina.server import ServerOptions, ServerState, create_app

    def factory(url: str, **kwargs: Any) -> DefaultRunner:
        return DefaultRunner(url, **{**FAST, **kwargs})

    state = ServerState(ServerOptions(url=db_url), runner_factory=factory)
    app = create_app(state, close_state=True)
    key = state.primary.create_api_key("test-admin", "admin").key
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server thread died"
        assert time.monotonic() < deadline, "the server did not start in 20 s"
        time.sleep(0.01)
    local = DefaultRunner(db_url, execute_tasks=False, **FAST)
    served = Served(f"http://127.0.0.1:{port}", db_url, key, local)
    try:
        yield served
    finally:
        for made in served.clients:
            made.close()
        local.shutdown()
        server.should_exit = True
        thread.join(30)
        sock.close()
