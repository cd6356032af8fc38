"""API keys on real SQLite and PostgreSQL: made once, stored as a hash only, checked,
revoked, expired, scoped to a tenant that exists; roles ordered viewer < operator < admin."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from cloacina import DefaultRunner
from cloacina.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    RequestError,
    TenantNotFoundError,
)
from cloacina.service.keys import KEY_PREFIX, TOUCH_EVERY, Role, allows
from cloacina.service.tenants import create_tenant

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]


def database_text(url: str) -> str:
    """Every row of every table of the default tenant's database, as text (a dump)."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[1]
        lite = sqlite3.connect(path)
        try:
            return "\n".join(lite.iterdump())
        finally:
            lite.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        assert "api_keys" in tables
        lines = []
        for table in tables:
            lines += [str(r[0]) for r in conn.execute(f'SELECT t::text FROM public."{table}" t')]
        return "\n".join(lines)


def test_role_order() -> None:
    assert [r.value for r in sorted(Role, key=lambda r: r.rank)] == ["viewer", "operator", "admin"]
    for have, need, ok in [
        ("viewer", "viewer", True),
        ("viewer", "operator", False),
        ("viewer", "admin", False),
        ("operator", "viewer", True),
        ("operator", "operator", True),
        ("operator", "admin", False),
        ("admin", "viewer", True),
        ("admin", "operator", True),
        ("admin", "admin", True),
    ]:
        assert allows(have, need) is ok, (have, need)
        assert allows(Role(have), Role(need)) is ok
    with pytest.raises(RequestError) as bad:
        Role.parse("root")
    assert bad.value.field == "role"


def test_key_shown_once_and_stored_as_hash_only(db_url: str, runner: DefaultRunner) -> None:
    created = runner.create_api_key("ci", "operator", expires_in=timedelta(days=90))
    key = created.key
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43  # 32 bytes
    assert key not in repr(created)
    info = created.info
    assert (info.name, info.role, info.tenant, info.state) == ("ci", Role.OPERATOR, None, "active")
    assert info.prefix == key[: len(info.prefix)] and len(info.prefix) < 16
    assert info.expires_at is not None
    assert 89 < (info.expires_at - info.created_at).total_seconds() / 86400 < 91

    # Another key: a fresh secret, never the same.
    other = runner.create_api_key("ci2", Role.ADMIN)
    assert other.key != key and other.id != created.id

    listed = {k.id: k for k in runner.list_api_keys()}
    assert set(listed) == {created.id, other.id}
    assert key not in repr(listed) and key not in str([k.to_dict() for k in listed.values()])

    dump = database_text(db_url)
    assert key not in dump and other.key not in dump
    assert key[len(info.prefix) :] not in dump  # not even the part after the shown prefix
    assert hashlib.sha256(key.encode()).hexdigest() in dump  # only its hash

    found = runner.authenticate_api_key(key)
    assert (found.id, found.role) == (created.id, Role.OPERATOR)
    assert runner.count_api_keys() == 2


def test_bad_keys_are_refused_without_echoing_them(runner: DefaultRunner) -> None:
    good = runner.create_api_key("ci", "viewer").key
    unknown = KEY_PREFIX + "A" * 43
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for bad in [None, "", "secret", good + "x", good.upper(), unknown, tampered, " " + good]:
        with pytest.raises(AuthenticationError) as refused:
            runner.authenticate_api_key(bad)
        if bad:
            assert bad.strip() not in str(refused.value)
    assert runner.authenticate_api_key(good).name == "ci"


def test_revoke(runner: DefaultRunner) -> None:
    created = runner.create_api_key("temp", "admin")
    keep = runner.create_api_key("keep", "viewer")
    runner.revoke_api_key(created.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        runner.authenticate_api_key(created.key)
    assert runner.authenticate_api_key(keep.key).id == keep.id
    first = runner.get_api_key(created.id).revoked_at
    assert first is not None and runner.get_api_key(created.id).state == "revoked"
    runner.revoke_api_key(created.id)  # again: nothing changes
    assert runner.get_api_key(created.id).revoked_at == first
    assert runner.count_api_keys() == 1
    with pytest.raises(ApiKeyNotFoundError):
        runner.revoke_api_key("no-such-key")


def test_expiry(runner: DefaultRunner) -> None:
    brief = runner.create_api_key("brief", "viewer", expires_in=0.05)
    lasting = runner.create_api_key("lasting", "viewer", expires_in=3600)
    time.sleep(0.1)
    with pytest.raises(AuthenticationError, match="expired"):
        runner.authenticate_api_key(brief.key)
    assert runner.get_api_key(brief.id).state == "expired"
    assert runner.authenticate_api_key(lasting.key).id == lasting.id
    assert runner.count_api_keys() == 1
    for bad in (0, -5, "90d", True):
        with pytest.raises(RequestError):
            runner.create_api_key("x", "viewer", expires_in=bad)  # type: ignore[arg-type]


def test_checked_fields_and_tenant_must_exist(db_url: str, runner: DefaultRunner) -> None:
    with pytest.raises(RequestError) as bad:
        runner.create_api_key("x", "superuser")
    assert bad.value.field == "role"
    for name in ("", "  ", "a\nb", "x" * 200):
        with pytest.raises(RequestError):
            runner.create_api_key(name, "viewer")
    with pytest.raises(TenantNotFoundError, match="acme"):
        runner.create_api_key("acme-ci", "operator", tenant="acme")
    assert runner.list_api_keys() == []
    create_tenant(db_url, "acme")
    scoped = runner.create_api_key("acme-ci", "operator", tenant="acme").info
    assert scoped.tenant == "acme"
    assert scoped.serves("acme") and not scoped.serves("public")
    assert scoped.allows("operator", "acme") and not scoped.allows("admin", "acme")
    assert not scoped.allows("viewer", "other")
    everywhere = runner.create_api_key("all", "viewer").info
    assert everywhere.serves("acme") and everywhere.serves("public")


def test_last_use_is_written_at_most_once_a_minute(runner: DefaultRunner) -> None:
    created = runner.create_api_key("ci", "viewer")
    assert runner.get_api_key(created.id).last_used_at is None
    runner.authenticate_api_key(created.key)
    first = runner.get_api_key(created.id).last_used_at
    assert first is not None
    for _ in range(5):
        runner.authenticate_api_key(created.key)
    assert runner.get_api_key(created.id).last_used_at == first
    assert TOUCH_EVERY == 60.0


def test_keys_live_in_the_default_tenant(db_url: str, make_runner: RunnerFactory) -> None:
    create_tenant(db_url, "acme")
    acme = make_runner(tenant="acme", execute_tasks=False)
    public = make_runner(execute_tasks=False)
    created = acme.create_api_key("from-acme", "viewer", tenant="acme")
    assert public.authenticate_api_key(created.key).id == created.id
    assert [k.id for k in public.list_api_keys()] == [created.id]
    acme.shutdown()
    assert acme._control is None  # its store of the default tenant was closed
