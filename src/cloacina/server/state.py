"""What a server holds while it runs: one :class:`~cloacina.runner.DefaultRunner` per tenant.

The server's own tenant (``--tenant``, default ``public``) gets the runner that executes tasks
(unless ``--no-execute``); another tenant's runner is opened the first time a request asks
for it, submit-only (its tasks are run by that tenant's workers). Keys and the audit log live
in the default tenant's database, which every runner reaches as its control store, so the
server authenticates with its own runner whatever tenant a request names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cloacina.errors import TenantNotFoundError
from cloacina.runner import DefaultRunner
from cloacina.settings import Settings

log = logging.getLogger("cloacina.server")

RunnerFactory = Callable[..., DefaultRunner]


@dataclass(frozen=True)
class ServerOptions:
    """How a server was asked to run (``cloacina serve``'s options)."""

    url: str
    tenant: str = "public"
    #: Run tasks in the server's process (``--no-execute``: API only, beside workers).
    execute: bool = True
    #: Require API keys (``--no-auth``: every request acts as an admin; loopback only).
    auth: bool = True
    settings: Settings | None = None


class ServerState:
    """The runners of a server, by tenant. :meth:`open` before serving, :meth:`close` after."""

    def __init__(self, options: ServerOptions, *, runner_factory: RunnerFactory = DefaultRunner):
        self.options = options
        self._factory = runner_factory
        self._runners: dict[str, DefaultRunner] = {}
        self._lock = threading.Lock()
        self._closed = False
        #: Set when the server begins to stop: event streams end at once.
        self.stopping = threading.Event()

    @property
    def tenant(self) -> str:
        return self.options.tenant

    @property
    def primary(self) -> DefaultRunner:
        """The server's own runner (its tenant's; it executes tasks unless ``--no-execute``)."""
        try:
            return self._runners[self.options.tenant]
        except KeyError:
            raise RuntimeError("ServerState.open() was not called") from None

    def open(self) -> DefaultRunner:
        """Open the server's own runner (creating and migrating the database if needed)."""
        with self._lock:
            if self.options.tenant not in self._runners:
                self._runners[self.options.tenant] = self._factory(
                    self.options.url,
                    tenant=self.options.tenant,
                    execute_tasks=self.options.execute,
                    settings=self.options.settings,
                )
        return self.primary

    def opened(self, tenant: str) -> DefaultRunner | None:
        """The runner of ``tenant`` if it is open already (no I/O: safe on the event loop)."""
        return self._runners.get(tenant)

    def runner(self, tenant: str) -> DefaultRunner:
        """The runner of ``tenant``, opened on first use (submit-only). An unknown tenant is
        :class:`~cloacina.errors.TenantNotFoundError`: a request never creates a tenant."""
        found = self._runners.get(tenant)
        if found is not None:
            return found
        with self._lock:
            found = self._runners.get(tenant)
            if found is not None:
                return found
            if self._closed:
                raise RuntimeError("the server is shutting down")
            if tenant not in self.primary.tenant_names():
                raise TenantNotFoundError(
                    f"no tenant named {tenant!r}; an admin creates it with `cloacina tenant create`"
                )
            runner = self._factory(
                self.options.url,
                tenant=tenant,
                execute_tasks=False,
                settings=self.options.settings,
            )
            self._runners[tenant] = runner
            return runner

    def runners(self) -> list[DefaultRunner]:
        with self._lock:
            return list(self._runners.values())

    def close(self) -> None:
        """Shut every runner down: the server's own last, letting its running tasks finish
        (up to ``shutdown_grace``)."""
        self.stopping.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runners = dict(self._runners)
        primary = runners.pop(self.options.tenant, None)
        for tenant, runner in runners.items():
            try:
                runner.shutdown()
            except Exception:
                log.exception("could not shut down the runner of tenant %r", tenant)
        if primary is not None:
            primary.shutdown()


__all__ = ["ServerOptions", "ServerState"]
