"""Run the HTTP API with uvicorn until SIGTERM/SIGINT (what ``cloacina serve`` calls).

Before listening it opens the database (creating and migrating it if needed) and refuses to
start while the database holds no active API key, unless authentication is off, which is
allowed on a loopback address only. On SIGTERM uvicorn stops accepting, open event streams
end, requests in flight finish; then the runners shut down (running tasks get
``shutdown_grace`` to finish).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections.abc import Callable
from typing import Any

from cloacina.errors import CloacinaError
from cloacina.server.app import create_app
from cloacina.server.state import ServerOptions, ServerState

log = logging.getLogger("cloacina.server")

#: Seconds uvicorn waits for requests in flight after SIGTERM before it cancels them.
GRACEFUL_SECONDS = 10


class ServeRefused(CloacinaError):
    """The server will not start as asked (no API key, --no-auth on a public address)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only be reached from this machine."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def no_auth_warning(host: str, port: int) -> str:
    return (
        f"WARNING: authentication is OFF (--no-auth): anyone who can reach "
        f"http://{host}:{port} acts as an admin of every tenant. Only for a machine of "
        "your own; make a key with `cloacina api-keys create` and drop --no-auth."
    )


def check_start(options: ServerOptions, host: str) -> None:
    """Refuse ``--no-auth`` on an address other machines can reach."""
    if not options.auth and not is_loopback(host):
        raise ServeRefused(
            f"--no-auth is allowed on a loopback address only (127.0.0.1, ::1, localhost), "
            f"not {host!r}: make an API key with `cloacina api-keys create --role admin` "
            "and serve with authentication"
        )


def open_state(options: ServerOptions) -> ServerState:
    """The server's state, its runner open; :class:`ServeRefused` if no API key exists
    while authentication is on."""
    state = ServerState(options)
    state.open()
    try:
        if options.auth and state.primary.count_api_keys() == 0:
            raise ServeRefused(
                "the database holds no active API key, so nobody could use this server: "
                "make one first with `cloacina api-keys create --name NAME --role admin` "
                "(or serve with --no-auth on 127.0.0.1 for a machine of your own)"
            )
    except BaseException:
        state.close()
        raise
    return state


def serve(
    options: ServerOptions,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    on_ready: Callable[[ServerState], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; the exit status (0 after a clean stop)."""
    import uvicorn

    check_start(options, host)
    state = open_state(options)
    if not options.auth:
        print(no_auth_warning(host, port), file=sys.stderr, flush=True)
        log.warning("authentication is off (--no-auth)")

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            state.stopping.set()  # open event streams end now, not at the timeout
            super().handle_exit(sig, frame)
            # uvicorn raises the signal again once it has stopped, which would kill the
            # process before the runners shut down (tasks handed back, worker marked
            # stopped): a stop asked by a signal is a clean stop here, exit status 0.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    try:
        app = create_app(state)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            server_header=False,
        )
        server = Server(config)
        if on_ready is not None:
            on_ready(state)
        server.run()
        started = server.started
    finally:
        state.close()
    return 0 if started else 1


__all__ = ["ServeRefused", "check_start", "is_loopback", "open_state", "serve"]
