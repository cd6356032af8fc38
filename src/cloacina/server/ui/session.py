"""The web UI's sessions: an API key signed in once becomes a session cookie.

The cookie holds only a random session id; the key stays in this server's memory, so each
request is checked again through the API's own authentication (a revoked or expired key ends
its sessions within the key cache's second). The CSRF token of a session is an HMAC of its id
with a per-server secret: it needs no storage and a token of one session fits no other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, replace

from fastapi import Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from cloacina.errors import TenantNotFoundError
from cloacina.runner import DefaultRunner
from cloacina.server.auth import Identity, authenticate, state_of
from cloacina.server.state import ServerState

COOKIE = "cloacina_session"
#: Seconds a session lives after sign-in (the key's own expiry applies too).
SESSION_TTL = 12 * 3600.0
#: Seconds the tenant switcher's list is reused.
TENANTS_TTL = 5.0
#: Sessions kept at most (the oldest go first).
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    sid: str
    key: str
    until: float
    #: The tenant picked with the switcher (keys of every tenant only; None: the default).
    tenant: str | None = None


class Sessions:
    """The signed-in sessions of one server, by id (in memory: a restart signs everyone out)."""

    def __init__(self, ttl: float = SESSION_TTL) -> None:
        self.ttl = ttl
        self.secret = secrets.token_bytes(32)
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._tenants: tuple[float, tuple[str, ...]] = (0.0, ())

    def create(self, key: str) -> Session:
        session = Session(secrets.token_urlsafe(32), key, time.monotonic() + self.ttl)
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda s: s.until)
                self._by_id.pop(oldest.sid, None)
            self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.until <= time.monotonic():
                del self._by_id[sid]
                return None
        return session

    async def tenant_names(self, state: ServerState) -> tuple[str, ...]:
        """The database's tenants, read at most every :data:`TENANTS_TTL` seconds."""
        now = time.monotonic()
        if now >= self._tenants[0]:
            names = await run_in_threadpool(state.primary.tenant_names)
            self._tenants = (now + TENANTS_TTL, tuple(sorted(names)))
        return self._tenants[1]

    def switch(self, session: Session, tenant: str | None) -> None:
        with self._lock:
            if session.sid in self._by_id:
                self._by_id[session.sid] = replace(session, tenant=tenant)

    def drop(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._by_id.pop(sid, None)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self.secret, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


@dataclass(frozen=True)
class Viewer:
    """A signed-in browser: its session, identity and tenant's runner."""

    session: Session
    identity: Identity
    runner: DefaultRunner
    csrf: str
    #: The tenants a key of every tenant may switch to (empty for a tenant's own key).
    tenants: tuple[str, ...] = ()

    @property
    def can_switch(self) -> bool:
        """Whether the key serves every tenant (the header shows a tenant switcher)."""
        return self.identity.key_tenant is None

    @property
    def can_operate(self) -> bool:
        from cloacina.service.keys import Role

        return self.identity.at_least(Role.OPERATOR)

    @property
    def is_admin(self) -> bool:
        """Whether the key is an admin's (packages, audit)."""
        from cloacina.service.keys import Role

        return self.identity.at_least(Role.ADMIN)


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.cloacina_ui_sessions
    return sessions


async def identify(request: Request, key: str) -> Identity:
    """Who ``key`` is, checked as the API checks a bearer key (AuthenticationError if bad)."""
    return await authenticate(
        request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
    )


async def viewer_of(request: Request) -> Viewer | None:
    """The signed-in viewer of ``request``, or None (no, unknown or expired session, or a
    key no longer valid)."""
    sessions = sessions_of(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    try:
        identity = await identify(request, session.key)
    except Exception:
        sessions.drop(session.sid)
        return None
    if session.tenant is not None and identity.key_tenant is None:
        identity = replace(identity, tenant=session.tenant)
    state = state_of(request)
    runner = state.opened(identity.tenant)
    if runner is None:
        try:
            runner = await run_in_threadpool(state.runner, identity.tenant)
        except TenantNotFoundError:
            if session.tenant is None:  # the key's own tenant is gone
                return None
            sessions.switch(session, None)  # the picked tenant was removed: the default
            return await viewer_of(request)
    tenants = await sessions.tenant_names(state) if identity.key_tenant is None else ()
    return Viewer(session, identity, runner, sessions.csrf_token(session), tenants)


def set_cookie(request: Request, response: Response, session: Session, ttl: float) -> None:
    response.set_cookie(
        COOKIE,
        session.sid,
        max_age=int(ttl),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


__all__ = ["COOKIE", "Session", "Sessions", "Viewer", "identify", "sessions_of", "viewer_of"]
