"""Messages a new user found wrong or unclear (issue 9, items 17 and 24), through the CLI in a
subprocess: each says what happened in the user's terms and how to go on."""

from __future__ import annotations

import socket

import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- 9.17: an unreachable PostgreSQL server ----------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ("executions", "list"),  # reads the tenant list first
        ("executions", "list", "--tenant", "acme"),
        ("run", "nosuch"),  # opens the store
    ],
)
def test_an_unreachable_server_says_it_could_not_be_reached_and_how_to_check(
    cli: Cli, argv: tuple[str, ...]
) -> None:
    port = closed_port()
    res = cli(*argv, "--db", f"postgresql://postgres@127.0.0.1:{port}/test")
    assert res.returncode != 0, res
    assert "Traceback" not in res.output
    assert f"PostgreSQL database at 127.0.0.1:{port}/test: it could not be reached" in res.stderr
    assert f"pg_isready -h 127.0.0.1 -p {port}" in res.stderr  # how to check
    assert "cannot read the tenants" not in res.stderr
    assert "?" not in res.stderr  # libpq's own question is not stacked on ours


# ---- 9.24: db current on PostgreSQL; the top-level help ----------------------------------------
def test_db_current_works_on_postgresql_and_says_so(cli: Cli, postgres_url: str) -> None:
    from cloacina.store.migrate import head_revision

    res = cli("db", "current", "--db", postgres_url)
    assert res.returncode == 0, res
    assert "none: no schema yet" in res.stdout  # a fresh database: nothing created by reading
    assert cli("db", "upgrade", "--db", postgres_url).returncode == 0
    res = cli("db", "current", "--db", postgres_url)
    assert res.returncode == 0, res
    assert f"{head_revision()} (head)" in res.stdout
    assert "SQLite or PostgreSQL" in cli("db", "current", "--help").stdout


def test_the_top_level_help_names_both_databases(cli: Cli) -> None:
    res = cli("--help")
    assert res.returncode == 0, res
    first = res.stdout.split("Options:")[0]
    assert "SQLite" in first and "PostgreSQL" in first, first
