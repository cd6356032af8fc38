"""Alembic migrations, applied automatically when a store opens a database."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from cloacina.errors import StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, lock_path: str | None = None) -> str:
    """Bring the database to the newest schema; returns the revision it is at.

    Refuses a database whose revision this version of Cloacina does not know (a newer one).
    Concurrent starters serialise on ``lock_path`` (a file lock) so they do not race.
    """
    cfg = _config()
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644) if lock_path else None
    try:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        current = current_revision(engine)
        if current is not None and current == head:
            return current
        if current is not None:
            try:
                script.get_revision(current)
            except Exception:
                raise StoreError(
                    f"the database schema is at revision {current!r}, which this version of "
                    "cloacina does not know: it was created by a newer cloacina. Upgrade "
                    "cloacina (pip install -U cloacina) to use this database."
                ) from None
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        assert head is not None
        return head
    finally:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            os.close(lock_fd)
