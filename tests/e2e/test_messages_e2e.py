"""Messages a new user found wrong or unclear (issue 9, items 17 and 24), through the CLI in a
subprocess: each says what happened in the user's terms and how to go on."""

from __future__ import annotations

import json
import socket
from pathlib import Path

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


# ---- 9.17 / 9.24: naming a workflow; a packaged run's version --------------------------------
def test_an_unknown_workflow_without_a_module_says_what_was_missing(cli: Cli, db: str) -> None:
    res = cli("run", "nosuch", "--db", db)
    assert res.returncode == 2, res
    assert "no module (use --module MOD)" not in res.stderr
    assert "no --module was given and no package is registered" in res.stderr
    assert "--module MOD" in res.stderr and "cloacina package register FILE" in res.stderr


def test_run_help_says_a_registered_package_needs_no_module(cli: Cli) -> None:
    text = " ".join(cli("run", "--help").stdout.split())
    assert "registered in the database (no --module needed)" in text
    assert "A registered package's workflow needs none." in text


PACKAGED = """\
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="versioned", package="versioned")
class versioned:
    @task()
    def only(context: Context) -> None:
        context.insert("done", True)
"""


def build_versioned(cli: Cli, tmp_path: Path) -> Path:
    """Build the package ``versioned`` 2.5.1 with the CLI; the archive's path."""
    project = tmp_path / "versioned"
    (project / "versioned").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "versioned"\nversion = "2.5.1"\n')
    (project / "versioned" / "__init__.py").write_text(PACKAGED)
    assert cli("package", "build", project).returncode == 0
    return project / "dist" / "versioned-2.5.1.cloacina"


def test_run_and_show_give_a_packaged_runs_package_version(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    archive = build_versioned(cli, tmp_path)
    assert cli("package", "register", archive, "--db", db).returncode == 0

    res = cli("run", "versioned", "--db", db)
    assert res.returncode == 0, res
    [line] = [ln for ln in res.stdout.splitlines() if ln.startswith("version")]
    assert line.split()[1] == "2.5.1" and "(workflow " in line, line

    data = json.loads(cli("run", "versioned", "--db", db, "--json").stdout)
    assert data["package_version"] == "2.5.1"
    res = cli("executions", "show", data["execution_id"], "--db", db)
    assert res.returncode == 0, res
    [line] = [ln for ln in res.stdout.splitlines() if ln.startswith("version")]
    assert line.split()[1] == "2.5.1" and data["version"][:12] in line, line
    shown = json.loads(cli("executions", "show", data["execution_id"], "--db", db, "--json").stdout)
    assert shown["package_version"] == "2.5.1"


# ---- 9.17: a .sig beside a package that is no signature of it ----------------------------------
@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("garbage\n", "malformed signature file"),
        ('{"key": "SHA256:00", "sha256": "00", "signature": ""}', "for different bytes"),
    ],
)
def test_a_sig_file_that_is_no_signature_of_the_package_is_warned_about(
    cli: Cli, tmp_path: Path, db: str, content: str, why: str
) -> None:
    archive = build_versioned(cli, tmp_path)
    sig = Path(str(archive) + ".sig")
    sig.write_text(content)
    warning = f"warning: ignoring {sig}, which is no signature of {archive}: "

    res = cli("package", "verify", archive)
    assert res.returncode == 0, res
    assert warning in res.stderr and why in res.stderr, res
    assert "- not signed" in res.stdout  # not "present but not checked"

    res = cli("package", "register", archive, "--db", db)
    assert res.returncode == 0, res
    assert warning in res.stderr and why in res.stderr, res

    # When something checks signatures, the check's own error is the message.
    res = cli("package", "register", archive, "--db", db + "2", "--require-signatures")
    assert res.returncode != 0 and "warning: ignoring" not in res.stderr, res
