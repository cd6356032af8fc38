"""Opening a store: a failed commit never wedges it, opening to read runs no DDL (and needs no
write or CREATE rights), a read-only database is refused for writing with a clear error and
still read, and clients leave nothing behind.

Read-only files are made read-only for real: tests run as root, who ignores permission bits,
so the in-process tests use ``chattr +i`` (which binds root too) and the CLI test runs the
commands as ``nobody`` (``setpriv``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import ReadOnlyDatabaseError, SchemaError, StoreError
from cloacina.store import open_store
from cloacina.store.migrate import HEAD_REVISION

pytestmark = pytest.mark.timeout(120)


def tx_connection(tx: Any) -> Any:
    """The driver connection behind a write transaction (to make its COMMIT fail)."""
    return tx._c


def set_revision(path: Path, revision: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()


def old_database(path: Path, revision: str = "0002") -> str:
    """A real SQLite database migrated only up to ``revision`` (as an older cloacina left
    it); its URL."""
    from alembic import command

    from cloacina.store.migrate import _config

    url = f"sqlite:///{path}"
    engine = create_engine(url, poolclass=NullPool)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()
    return url


def stored_revision(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def one_run(url: str, name: str) -> str:
    """A database at ``url`` holding one completed run; its id."""

    @workflow(name=name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("done", True)

    with DefaultRunner(url) as runner:
        result = runner.execute(name, timeout=30)
        assert result.status == "completed"
        return result.execution_id


# ---- a failed COMMIT never wedges the store ---------------------------------------------------
DEFERRED_FK = (
    "CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE child (parent_id INTEGER REFERENCES parent(id) "
    "DEFERRABLE INITIALLY DEFERRED)",
)


def test_a_failed_commit_does_not_wedge_the_sqlite_store(sqlite_url: str) -> None:
    """A deferred foreign key fails at COMMIT. That COMMIT used to be outside the ``try``: the
    connection stayed in the transaction, and every later write failed with "cannot start a
    transaction within a transaction"."""
    store = open_store(sqlite_url)
    try:
        with store.write() as tx:  # temporary tables: nothing of them reaches the file
            for sql in DEFERRED_FK:
                tx_connection(tx).execute(sql)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), store.write() as tx:
            tx_connection(tx).execute("INSERT INTO child VALUES (42)")
        with store.write() as tx:  # the next write works, and the failed one left nothing
            conn = tx_connection(tx)
            assert conn.execute("SELECT count(*) FROM child").fetchone()[0] == 0
            conn.execute("INSERT INTO parent VALUES (1)")
            conn.execute("INSERT INTO child VALUES (1)")
        assert store.list_executions() == []
    finally:
        store.close()


def test_a_failing_rollback_does_not_hide_the_first_error(sqlite_url: str) -> None:
    """When even the rollback fails (here: the connection is gone), the caller still sees the
    error that failed the write, and the next write gets a fresh connection."""
    store = open_store(sqlite_url)
    try:
        with pytest.raises(ValueError, match="the first error"), store.write() as tx:
            tx_connection(tx).close()
            raise ValueError("the first error")
        with store.write() as tx:
            tx_connection(tx).execute("CREATE TEMP TABLE t (x)")
    finally:
        store.close()


def test_a_failed_commit_does_not_wedge_the_postgres_store(postgres_url: str) -> None:
    """PostgreSQL's write() commits inside its ``try`` (a failed COMMIT ends the transaction
    on the server, and the connection is rolled back or dropped): the next write works."""
    import psycopg

    store = open_store(postgres_url)
    try:
        with pytest.raises(psycopg.errors.ForeignKeyViolation), store.write() as tx:
            conn = tx_connection(tx)
            for sql in DEFERRED_FK:
                conn.execute(sql.replace("INTEGER PRIMARY KEY", "int PRIMARY KEY"))
            conn.execute("INSERT INTO child VALUES (42)")
        with store.write() as tx:
            tx_connection(tx).execute("SELECT 1")
        assert store.list_executions() == []
    finally:
        store.close()


# ---- opening to read runs no DDL -------------------------------------------------------------
def test_opening_a_sqlite_file_to_read_creates_and_migrates_nothing(
    tmp_path: Path, name: Callable[[str], str]
) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(SchemaError, match=r"no Cloacina database at .*does not exist"):
        open_store(f"sqlite:///{missing}", read_only=True)
    assert not missing.exists()

    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(SchemaError, match="the file is empty") as caught:
        open_store(f"sqlite:///{empty}", read_only=True)
    assert caught.value.revision is None
    assert empty.stat().st_size == 0  # no schema was created

    path = tmp_path / "old.db"
    url = old_database(path)
    with pytest.raises(SchemaError, match="older than this cloacina") as caught:
        open_store(url, read_only=True)
    assert f"cloacina db upgrade --db {url}" in str(caught.value)
    assert caught.value.revision == "0002"
    assert stored_revision(path) == "0002"  # not migrated

    open_store(url).close()  # opening to write migrates
    assert stored_revision(path) == HEAD_REVISION
    one_run(url, name("ro_old"))
    set_revision(path, "0999")
    with pytest.raises(SchemaError, match="newer cloacina"):
        open_store(url, read_only=True)

    set_revision(path, HEAD_REVISION)
    store = open_store(url, read_only=True)
    try:
        assert [row.status for row in store.list_executions()] == ["completed"]
        with pytest.raises(ReadOnlyDatabaseError, match="opened read-only"), store.write():
            pass
    finally:
        store.close()


def test_read_commands_on_an_old_schema_name_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = old_database(path)
    for command in (["executions", "list"], ["workers", "list"], ["workflows", "list"]):
        proc = cli(*command, "--db", url, cwd=tmp_path)
        assert proc.returncode == 2, proc
        assert "Traceback" not in proc.stderr
        assert f"cloacina db upgrade --db {url}" in proc.stderr
    proc = cli("db", "current", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc
    assert f"0002 (head is {HEAD_REVISION})" in proc.stdout
    assert stored_revision(path) == "0002"
    proc = cli("db", "upgrade", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc
    assert f"from schema revision 0002 to {HEAD_REVISION}" in proc.stdout
    assert stored_revision(path) == HEAD_REVISION
    proc = cli("executions", "list", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc


@pytest.fixture
def pg_reader(postgres_url: str) -> Iterator[tuple[str, str]]:
    """(the database's URL, the URL of a role that may read it but create nothing)."""
    role = f"cloacina_reader_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'REVOKE CREATE ON SCHEMA public FROM "{role}", PUBLIC'))
    try:
        yield postgres_url, make_url(postgres_url).set(username=role).render_as_string(False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_opening_postgres_to_read_needs_no_create_rights(
    pg_reader: tuple[str, str], name: Callable[[str], str]
) -> None:
    url, reader_url = pg_reader
    role = make_url(reader_url).username
    tenant = "acme"
    with pytest.raises(SchemaError, match="no such schema"):
        open_store(url, tenant=tenant, read_only=True)
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as conn:  # reading did not create the tenant's schema
            assert conn.execute(text("SELECT to_regnamespace('acme')")).scalar() is None
        open_store(url, tenant=tenant).close()  # the owner creates and migrates it
        with admin.begin() as conn:
            conn.execute(text(f'GRANT USAGE ON SCHEMA acme TO "{role}"'))
            conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA acme TO "{role}"'))
    finally:
        admin.dispose()
    with pytest.raises(StoreError):  # opening to write needs CREATE (CREATE SCHEMA ...)
        open_store(reader_url, tenant=tenant)
    store = open_store(reader_url, tenant=tenant, read_only=True)
    try:
        assert store.list_executions() == []
        assert store.list_workers() == []
    finally:
        store.close()
    with DefaultRunner(reader_url, tenant=tenant, execute_tasks=False, read_only=True) as client:
        assert client.list_packages() == []
        with pytest.raises(ReadOnlyDatabaseError):
            client.schedule_workflow(_defined(name("ro_pg")))


def _defined(wf_name: str) -> str:
    @workflow(name=wf_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            pass

    return wf_name


# ---- nothing leaks -----------------------------------------------------------------------------
def test_submit_only_clients_leave_no_package_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three clients used to leave three ``cloacina-packages-*`` temporary directories: a
    client builds no package loader."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    assert tempfile.gettempdir() == str(private_tmp)
    url = f"sqlite:///{tmp_path / 't.db'}"
    for _ in range(3):
        with DefaultRunner(url, execute_tasks=False) as client:
            assert client.list_executions() == []
    assert list(private_tmp.glob("cloacina-packages-*")) == []


def test_a_read_only_client_refuses_to_execute_tasks(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="read_only=True needs execute_tasks=False"):
        DefaultRunner(sqlite_url, read_only=True)


# ---- read-only SQLite files and directories --------------------------------------------------
@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """``immutable(path)``: ``chattr +i`` (undone at teardown), which binds root too."""
    done: list[Path] = []

    def make(path: Path) -> None:
        proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"chattr +i is not available here ({proc.stderr.strip()})")
        done.append(path)

    yield make
    for path in reversed(done):
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_read_only_database_is_refused_for_writing_and_still_read(
    tmp_path: Path, name: Callable[[str], str], immutable: Callable[[Path], None], where: str
) -> None:
    """A read-only file (or a database in a read-only directory, where SQLite cannot create
    the WAL's -shm file) gives a ReadOnlyDatabaseError that says so, never a driver
    traceback; reading it works."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "runs.db"
    url = f"sqlite:///{path}"
    execution_id = one_run(url, name("ro_file"))
    assert not (folder / "runs.db-shm").exists()  # the last writer removed it on close
    immutable(path if where == "file" else folder)

    expected = "the file is read-only" if where == "file" else "its directory .* is read-only"
    for open_to_write in (
        lambda: DefaultRunner(url),
        lambda: DefaultRunner(url, execute_tasks=False),
        lambda: open_store(url),
    ):
        with pytest.raises(ReadOnlyDatabaseError, match=expected) as caught:
            open_to_write()
        assert "read commands" in str(caught.value)

    store = open_store(url, read_only=True)
    try:
        assert store.get_execution(execution_id) is not None
        assert [t.status for t in store.get_tasks(execution_id)] == ["completed"]
    finally:
        store.close()
    with DefaultRunner(url, execute_tasks=False, read_only=True) as client:
        assert client.get_execution(execution_id).status == "completed"


# ---- the CLI, as a user who may not write -------------------------------------------------------
FLOWS = """
from cloacina import Context, task, workflow


@workflow(name="greeting")
class greeting:
    @task()
    def greet(context: Context) -> None:
        context.insert("greeting", "hello")
"""


def cli(*args: str, cwd: Path, user: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m cloacina ARGS``; with ``user``, as ``nobody`` when we are root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOACINA_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "HOME": str(cwd)})
    prefix: list[str] = []
    if user and os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "cloacina", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's private (0700) temporary tree, so nobody can reach it."""
    path = Path(tempfile.mkdtemp(prefix="cloacina-ro-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        path.chmod(0o755)
        shutil.rmtree(path)


@pytest.mark.parametrize("where", ["file", "directory"])
def test_cli_on_a_database_the_user_cannot_write(shared_dir: Path, where: str) -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    (shared_dir / "flows.py").write_text(FLOWS, encoding="utf-8")
    url = f"sqlite:///{shared_dir / 'runs.db'}"
    made = cli("run", "greeting", "-m", "flows", "--db", url, "--json", cwd=shared_dir)
    assert made.returncode == 0, made
    listed = cli("executions", "list", "--db", url, "--json", cwd=shared_dir)
    (run,) = json.loads(listed.stdout)
    (shared_dir / "runs.db").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    # Only the file is read-only (the user may create the WAL's files beside it), or the
    # directory is too (SQLite cannot create them: the database is read as a snapshot).
    shared_dir.chmod(0o777 if where == "file" else 0o555)

    refused = cli("run", "greeting", "-m", "flows", "--db", url, cwd=shared_dir, user=True)
    assert refused.returncode == 2, refused
    assert "Traceback" not in refused.stderr
    assert "read-only" in refused.stderr and "read commands" in refused.stderr

    for command in (
        ["executions", "list"],
        ["executions", "show", run["execution_id"]],
        ["executions", "watch", run["execution_id"]],
        ["workers", "list", "--all"],
        ["workflows", "list"],
        ["db", "current"],
        ["tenant", "list"],
    ):
        proc = cli(*command, "--db", url, cwd=shared_dir, user=True)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    listed = cli("executions", "list", "--db", url, cwd=shared_dir, user=True)
    assert "greeting" in listed.stdout and "completed" in listed.stdout
    assert HEAD_REVISION in cli("db", "current", "--db", url, cwd=shared_dir, user=True).stdout
