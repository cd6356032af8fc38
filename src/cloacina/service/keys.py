"""API keys: who may call the HTTP API, with which role, in which tenant.

A key is ``clk_`` and 43 characters of :func:`secrets.token_urlsafe` (32 random bytes). It is
shown once, when it is made; the database keeps only its SHA-256 (and its first characters,
to tell keys apart in a list). A key is found by its hash and the hashes compared in constant
time. Keys live in the default tenant's database; each serves one tenant or all of them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cloacina.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    RequestError,
    TenantNotFoundError,
)
from cloacina.model.status import to_datetime
from cloacina.service.audit import AuditMixin, current_actor, outcome_of
from cloacina.store.keys import ApiKeyRow

#: What every key starts with: tells a Cloacina key apart (in a leaked file, a secret scanner).
KEY_PREFIX = "clk_"
#: How many of a key's first characters are kept to show it (the prefix and 8 more).
SHOWN_CHARS = len(KEY_PREFIX) + 8
#: A key's ``last_used_at`` is written at most this often (seconds): not on every request.
TOUCH_EVERY = 60.0
#: Longest key name.
NAME_MAX = 128

_KEY_SHAPE = re.compile(r"^clk_[A-Za-z0-9_-]{43}$")


class Role(enum.StrEnum):
    """What a key may do: ``viewer`` reads; ``operator`` also starts, cancels, pauses,
    resumes and reruns runs; ``admin`` does everything (packages, keys, tenants, audit)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        """A role from its name; a :class:`RequestError` naming ``role`` if unknown."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(r.value for r in cls)
            message = f"unknown role {value!r}: use one of {names}"
            raise RequestError(message, field="role") from None


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def allows(role: Role | str, needed: Role | str) -> bool:
    """Whether ``role`` may do what needs ``needed`` (viewer < operator < admin)."""
    return Role(role).rank >= Role(needed).rank


def hash_key(key: str) -> str:
    """The SHA-256 (hex) under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key without its secret. ``tenant`` is the one tenant it serves (``None``:
    every tenant); ``prefix`` its first characters, to tell keys apart."""

    id: str
    name: str
    role: Role
    tenant: str | None
    prefix: str
    created_at: datetime
    created_by: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def state(self) -> str:
        """``active``, ``revoked`` or ``expired`` (now)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"

    @property
    def active(self) -> bool:
        return self.state == "active"

    def serves(self, tenant: str) -> bool:
        """Whether the key may act in ``tenant``."""
        return self.tenant is None or self.tenant == tenant

    def allows(self, needed: Role | str, tenant: str | None = None) -> bool:
        """Whether the key's role reaches ``needed`` (and it serves ``tenant`` if given)."""
        return allows(self.role, needed) and (tenant is None or self.serves(tenant))

    def to_dict(self) -> dict[str, Any]:
        """The key as JSON values (times in ISO 8601 UTC with ``Z``), never its secret."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "tenant": self.tenant,
            "prefix": self.prefix,
            "state": self.state,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class CreatedApiKey:
    """A key just made: ``key`` is its secret, shown this once (it is not stored)."""

    id: str
    key: str
    info: ApiKeyInfo

    def __repr__(self) -> str:  # never the secret in a log line or a traceback
        return f"CreatedApiKey(id={self.id!r}, key='{self.info.prefix}…', info={self.info!r})"


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    created = to_datetime(row.created_at)
    assert created is not None
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=Role.parse(row.role),
        tenant=row.tenant,
        prefix=row.prefix,
        created_at=created,
        created_by=row.created_by,
        expires_at=to_datetime(row.expires_at),
        revoked_at=to_datetime(row.revoked_at),
        last_used_at=to_datetime(row.last_used_at),
    )


def _seconds(expires_in: float | timedelta | None) -> float | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise RequestError(
            f"expires_in must be a positive number of seconds (or a timedelta), not {expires_in!r}",
            field="expires_in",
        )
    return float(seconds)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RequestError("an API key needs a name (who or what uses it)", field="name")
    name = name.strip()
    if len(name) > NAME_MAX or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RequestError(
            f"an API key's name is at most {NAME_MAX} printable characters", field="name"
        )
    return name


class KeysMixin(AuditMixin):
    """Creating, listing, revoking and checking API keys, on
    :class:`~cloacina.runner.DefaultRunner` (in its control store: the default tenant's)."""

    _key_touch_lock = threading.Lock()

    def create_api_key(
        self,
        name: str,
        role: Role | str,
        tenant: str | None = None,
        expires_in: float | timedelta | None = None,
    ) -> CreatedApiKey:
        """Make a key named ``name`` with ``role`` for ``tenant`` (which must exist;
        ``None``: every tenant), valid ``expires_in`` seconds (``None``: until revoked).
        The returned :class:`CreatedApiKey` holds the secret, which is not kept: show it
        once."""
        try:
            created = self._create_api_key(name, role, tenant, expires_in)
        except Exception as exc:
            if current_actor() is not None:
                self.record_audit(
                    "key.create", str(name)[:NAME_MAX], outcome_of(exc), tenant=tenant
                )
            raise
        if current_actor() is not None:
            info = created.info
            self.record_audit(
                "key.create",
                f"{info.id} ({info.name})",
                tenant=tenant,
                detail={"role": info.role.value, "prefix": info.prefix},
            )
        return created

    def _create_api_key(
        self,
        name: str,
        role: Role | str,
        tenant: str | None,
        expires_in: float | timedelta | None,
    ) -> CreatedApiKey:
        name = _check_name(name)
        checked = Role.parse(role)
        lifetime = _seconds(expires_in)
        if tenant is not None:
            self._require_tenant(tenant)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        actor = current_actor()
        row = ApiKeyRow(
            id=str(uuid.uuid4()),
            name=name,
            role=checked.value,
            tenant=tenant,
            prefix=key[:SHOWN_CHARS],
            key_hash=hash_key(key),
            created_at=now,
            created_by=(actor.name if actor is not None else "")[:255],
            expires_at=None if lifetime is None else now + lifetime,
            revoked_at=None,
            last_used_at=None,
        )
        self.control_store.insert_api_key(row)
        return CreatedApiKey(row.id, key, _info(row))

    def _require_tenant(self, tenant: str) -> None:
        from cloacina.service.databases import check_tenant_name, tenant_exists

        check_tenant_name(tenant)
        if not tenant_exists(self.url, tenant):
            raise TenantNotFoundError(
                f"no tenant {tenant!r} in this database; create it first "
                f"(cloacina tenant create {tenant}), or make a key for every tenant"
            )

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """Every key, oldest first, revoked and expired ones too (see
        :attr:`ApiKeyInfo.state`); never a secret."""
        return [_info(r) for r in self.control_store.list_api_keys()]

    def get_api_key(self, key_id: str) -> ApiKeyInfo:
        row = self.control_store.find_api_key(key_id=key_id)
        if row is None:
            raise ApiKeyNotFoundError(
                f"no API key with id {key_id!r} (see: cloacina api-keys list)"
            )
        return _info(row)

    def count_api_keys(self) -> int:
        """How many keys are active (neither revoked nor expired)."""
        return self.control_store.count_active_api_keys(time.time())

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key at once (revoking it again changes nothing);
        :class:`ApiKeyNotFoundError` if there is none."""
        audit = current_actor() is not None
        try:
            found = self.control_store.revoke_api_key(key_id, time.time())
            if not found:
                raise ApiKeyNotFoundError(
                    f"no API key with id {key_id!r} (see: cloacina api-keys list)"
                )
        except Exception as exc:
            if audit:
                self.record_audit("key.revoke", key_id, outcome_of(exc), tenant=None)
            raise
        if audit:
            row = self.control_store.find_api_key(key_id=key_id)
            label = f"{key_id} ({row.name})" if row is not None else key_id
            self.record_audit("key.revoke", label, tenant=row.tenant if row else None)

    def authenticate_api_key(self, key: str | None) -> ApiKeyInfo:
        """The key behind ``key`` (an ``Authorization: Bearer`` value), if it is known,
        not revoked and not expired; else :class:`AuthenticationError` (whose message never
        holds the key). Records its use at most once a minute."""
        if not key:
            raise AuthenticationError(
                "no API key: send one as 'Authorization: Bearer <key>' (make one with "
                "cloacina api-keys create)"
            )
        if not isinstance(key, str) or not _KEY_SHAPE.match(key):
            raise AuthenticationError("invalid API key: not a Cloacina API key (clk_...)")
        digest = hash_key(key)
        row = self.control_store.find_api_key(key_hash=digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise AuthenticationError("invalid API key: unknown (or deleted) key")
        now = time.time()
        if row.revoked_at is not None:
            raise AuthenticationError(f"API key {row.id} ({row.name}) was revoked; use another key")
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthenticationError(
                f"API key {row.id} ({row.name}) expired; make a new one with "
                "cloacina api-keys create"
            )
        self._touch_key(row, now)
        return _info(row)

    def _touch_key(self, row: ApiKeyRow, now: float) -> None:
        # On every request's path: one write a minute per key at most, judged here first
        # (no round trip) and then by the database (other servers share the key).
        if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
            return
        with self._key_touch_lock:
            touched: dict[str, float] = self.__dict__.setdefault("_key_touched", {})
            if now - touched.get(row.id, 0.0) < TOUCH_EVERY:
                return
            touched[row.id] = now
        self.control_store.touch_api_key(row.id, now, TOUCH_EVERY)
