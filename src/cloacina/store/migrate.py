"""Alembic migrations, applied automatically when a store opens a database.

Alembic is imported only when the schema is not already at :data:`HEAD_REVISION`, so opening
an up-to-date database stays fast (the CLI opens one on every call).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from cloacina.errors import SchemaError, StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The newest revision in migrations/versions (a unit test keeps the two in step).
HEAD_REVISION = "0015"


def _config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision of the migration scripts (read with Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return str(head)


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at, or None for an empty database. On a connection, the
    read's transaction is ended (rolled back: it wrote nothing)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return current_revision(conn)
    try:
        row = bind.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return None  # no alembic_version table yet
    finally:
        bind.rollback()
    return None if row is None else str(row[0])


def _newer_message(current: str) -> str:
    return (
        f"the database schema is at revision {current!r}, which this version of "
        "cloacina does not know: it was created by a newer cloacina. Upgrade "
        "cloacina (pip install -U cloacina) to use this database."
    )


def _is_known(current: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        ScriptDirectory.from_config(_config()).get_revision(current)
    except Exception:
        return False
    return True


def require_head(bind: Engine | Connection, where: str, upgrade_hint: str) -> str:
    """Check, without changing anything, that the database is at :data:`HEAD_REVISION`.

    For stores opened to read: they run no DDL, so a database with no schema or an older one
    is refused with a :class:`SchemaError` that says to run ``upgrade_hint`` (the command that
    migrates it); a newer one, with the advice to upgrade cloacina.
    """
    current = current_revision(bind)
    if current == HEAD_REVISION:
        return current
    if current is None:
        raise SchemaError(
            f"no Cloacina database in {where} (no Cloacina tables); run a workflow there, "
            f"or create the schema with: {upgrade_hint}"
        )
    if not _is_known(current):
        raise SchemaError(_newer_message(current), revision=current)
    raise SchemaError(
        f"{where} is at schema revision {current}, older than this cloacina's "
        f"{HEAD_REVISION}; upgrade it with: {upgrade_hint}",
        revision=current,
    )


def file_lock(path: str) -> AbstractContextManager[None]:
    """Serialise migrations of a SQLite file across processes (a lock on the file itself)."""

    @contextmanager
    def hold() -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    return hold()


def upgrade(engine: Engine, lock: AbstractContextManager[Connection | None] | None = None) -> str:
    """Bring the database to the newest schema; returns the revision it is at.

    Refuses a database whose revision this version of Cloacina does not know (a newer one).
    Concurrent starters serialise on ``lock`` (a file lock for SQLite, an advisory lock for
    PostgreSQL) so they do not race. A lock held on a connection of ``engine`` yields that
    connection, and the migration runs on it (a pool of one connection cannot hand out a
    second one while the lock holds the first).
    """
    if current_revision(engine) == HEAD_REVISION:
        return HEAD_REVISION
    from alembic.script import ScriptDirectory

    cfg = _config()
    script = ScriptDirectory.from_config(cfg)
    with lock if lock is not None else nullcontext() as held:
        if held is not None:
            return _upgrade_on(held, cfg, script)
        with engine.connect() as conn:
            return _upgrade_on(conn, cfg, script)


def _upgrade_on(conn: Connection, cfg: Any, script: Any) -> str:
    """Migrate on ``conn`` to the head revision, in one transaction (under the lock: another
    starter may have migrated while this one waited for it)."""
    from alembic import command

    head = script.get_current_head()
    current = current_revision(conn)
    if current is not None and current == head:
        return str(current)
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:
            raise StoreError(_newer_message(current)) from None
    with conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert head is not None
    return str(head)
