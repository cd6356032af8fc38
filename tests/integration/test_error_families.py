"""Errors precise enough for a caller (the HTTP layer, a script) to act on without reading
messages: not found (404), conflict (409), unavailable (503), and bad input."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest

from cloacina import DefaultRunner
from cloacina.errors import (
    ConflictError,
    ExecutionNotFoundError,
    InvalidStateError,
    InvalidTenantNameError,
    NotFoundError,
    PackageNotFoundError,
    StoreError,
    StoreUnavailableError,
    UnavailableError,
    WorkflowNotFoundError,
)
from cloacina.store import open_store

pytestmark = pytest.mark.timeout(60)


def test_the_families_of_errors() -> None:
    for cls in (ExecutionNotFoundError, WorkflowNotFoundError, PackageNotFoundError):
        assert issubclass(cls, NotFoundError) and issubclass(cls, LookupError)
    assert issubclass(InvalidStateError, ConflictError)
    assert issubclass(StoreUnavailableError, UnavailableError)
    assert issubclass(StoreUnavailableError, StoreError)  # callers catching StoreError still do
    assert issubclass(InvalidTenantNameError, ValueError)


def test_a_runner_says_not_found_and_conflict_by_type(
    db_url: str, insert_run: Callable[..., str]
) -> None:
    with DefaultRunner(db_url, execute_tasks=False) as client:
        with pytest.raises(NotFoundError):
            client.cancel("no-such-run")
        with pytest.raises(NotFoundError):
            client.execute("no_such_workflow_anywhere")
        eid = insert_run(client.store, [("only", 0, 0, 1)])
        client.cancel(eid)
        with pytest.raises(ConflictError):
            client.cancel(eid)


def test_a_bad_tenant_name_is_bad_input(sqlite_url: str) -> None:
    with pytest.raises(InvalidTenantNameError, match="invalid tenant name"):
        open_store(sqlite_url, tenant="Not A Tenant")


def test_a_sqlite_database_locked_past_busy_timeout_is_unavailable(sqlite_url: str) -> None:
    store = open_store(sqlite_url, busy_timeout=0.2)
    holder = sqlite3.connect(sqlite_url[len("sqlite:///") :], isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="busy_timeout"), store.write():
            pass
        assert time.monotonic() - started < 5
        holder.execute("ROLLBACK")
        with store.write() as tx:  # free again: writes work
            assert tx.lock_run_status("nothing") is None
    finally:
        holder.close()
        store.close()


def test_an_unreachable_postgres_server_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreUnavailableError, match="could not be reached"):
        open_store("postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=2)
