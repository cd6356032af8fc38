"""Who is asking, for which tenant, with which role: the dependency every route declares.

``Authorization: Bearer <key>``; the key is checked by the service layer
(:meth:`~cloacina.runner.DefaultRunner.authenticate_api_key`, a SHA-256 lookup compared in
constant time). Fail closed, in this order: no or bad key 401; a key bound to one tenant that
names another in ``X-Cloacina-Tenant`` 403; a role below the route's 403; a tenant that does
not exist 404. Each route states its least role with :func:`require`; the role is kept on the
dependency (``.role``) so that the authorisation tests can read every route's from the app's
own route table.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from cloacina.errors import AuthenticationError, PermissionDeniedError
from cloacina.runner import DefaultRunner
from cloacina.server.state import ServerState
from cloacina.service.audit import Actor, acting_as, os_user
from cloacina.service.keys import ApiKeyInfo, Role, allows

T = TypeVar("T")

TENANT_HEADER = "X-Cloacina-Tenant"

#: Declares the scheme in the OpenAPI document (the "Authorize" button of /docs); checking
#: is ours (auto_error=False), so a missing key is our 401, not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, description="An API key: `cloacina api-keys create`")


@dataclass(frozen=True)
class Identity:
    """Who a request acts as: its tenant, role, key and audit actor."""

    tenant: str
    role: Role
    #: The tenant the key is bound to (None: every tenant).
    key_tenant: str | None
    key_id: str | None
    actor: Actor

    def at_least(self, role: Role) -> bool:
        return allows(self.role, role)


@dataclass(frozen=True)
class Caller:
    """An admitted request: its identity, and its tenant's runner."""

    identity: Identity
    runner: DefaultRunner
    state: ServerState

    @property
    def tenant(self) -> str:
        return self.identity.tenant

    @property
    def role(self) -> Role:
        return self.identity.role

    @property
    def key_tenant(self) -> str | None:
        return self.identity.key_tenant

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread, as this caller (audited as its
        actor)."""
        actor = self.identity.actor

        def call() -> T:
            with acting_as(actor):
                return fn(*args, **kwargs)

        return await run_in_threadpool(call)


class KeyCache:
    """Keys that authenticated in the last :attr:`ttl` seconds, by the SHA-256 of the key
    (never the key itself), so that a burst of requests costs one database read per key
    and second rather than one per request. A revocation through this server empties it at
    once; one made elsewhere (``cloacina api-keys revoke``) takes effect within ``ttl``. An
    expired key is never served from it."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, ApiKeyInfo]] = {}

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, digest: str) -> ApiKeyInfo | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        until, info = entry
        if time.monotonic() >= until or (
            info.expires_at is not None and info.expires_at <= datetime.now(UTC)
        ):
            self._entries.pop(digest, None)
            return None
        return info

    def put(self, digest: str, info: ApiKeyInfo) -> None:
        if len(self._entries) > 10_000:  # many keys at once: start afresh rather than grow
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl, info)

    def clear(self) -> None:
        self._entries.clear()


def key_cache_of(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.cloacina_keys
    return cache


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.cloacina
    return state


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _key_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(
            "this endpoint needs an API key: send the header 'Authorization: Bearer <key>' "
            "(an admin makes keys with `cloacina api-keys create`)"
        )
    return credentials.credentials


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Identity:
    """Who ``request`` acts as, before any role check (401 or 403 if it may not act)."""
    state = state_of(request)
    asked = request.headers.get(TENANT_HEADER) or None
    client = client_of(request)
    request_id = request_id_of(request)
    if not state.options.auth:
        actor = Actor(
            name=f"local:{os_user()} (--no-auth)",
            key_id=None,
            client=client,
            request_id=request_id,
        )
        return Identity(asked or state.tenant, Role.ADMIN, None, None, actor)
    key = _key_of(credentials)
    cache = key_cache_of(request)
    digest = cache.digest(key)
    info = cache.get(digest)
    if info is None:
        info = await run_in_threadpool(state.primary.authenticate_api_key, key)
        cache.put(digest, info)
    if info.tenant is not None and asked is not None and asked != info.tenant:
        raise PermissionDeniedError(
            f"this API key is bound to tenant {info.tenant!r} and cannot act in tenant "
            f"{asked!r}; use a key of that tenant (or drop the {TENANT_HEADER} header)"
        )
    actor = Actor(
        name=f"key:{info.id} ({info.name})",
        key_id=info.id,
        client=client,
        request_id=request_id,
    )
    return Identity(
        info.tenant or asked or state.tenant, Role(info.role), info.tenant, info.id, actor
    )


def require(role: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency that admits callers of ``role`` or above and opens their tenant's
    runner. ``dependency.role`` is ``role`` (read by the authorisation tests)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        identity = await authenticate(request, credentials)
        if not identity.at_least(role):
            raise PermissionDeniedError(
                f"this needs the {role} role; the API key has {identity.role} "
                "(an admin can make a key with more rights)"
            )
        state = state_of(request)
        runner = state.opened(identity.tenant)
        if runner is None:  # opened (and the tenant looked for) on a thread, once
            runner = await run_in_threadpool(state.runner, identity.tenant)
        return Caller(identity, runner, state)

    dependency.role = role  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{role}"
    return dependency


VIEWER = require(Role.VIEWER)
OPERATOR = require(Role.OPERATOR)
ADMIN = require(Role.ADMIN)

__all__ = ["ADMIN", "OPERATOR", "TENANT_HEADER", "VIEWER", "Caller", "require"]
