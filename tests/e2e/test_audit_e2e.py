"""``cloacina api-keys create|list|revoke`` and ``cloacina audit list|export`` in subprocesses,
on SQLite and PostgreSQL: a key is printed once and never stored; every changing command
leaves an audit row as ``local:<os user>``."""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner
from cloacina.errors import AuthenticationError

from .helpers import Cli

pytestmark = pytest.mark.timeout(180)

KEY = re.compile(r"^clk_[A-Za-z0-9_-]{43}$")

HELD = textwrap.dedent(
    """
    import time

    from cloacina import Context, task, workflow


    @workflow(name="held")
    class held:
        @task()
        def hold(context: Context) -> None:
            time.sleep(120)
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    make: Callable[[], str] = request.getfixturevalue("postgres_database")
    return make()


def audit(cli: Cli, db: str, *args: str) -> list[dict[str, Any]]:
    """The audit entries, oldest first."""
    res = cli("audit", "list", "--db", db, "--json", "--limit", "1000", *args)
    assert res.returncode == 0, res
    items: list[dict[str, Any]] = json.loads(res.stdout)["items"]
    return list(reversed(items))


def me() -> str:
    return f"local:{getpass.getuser()}"


def test_api_keys_made_once_listed_revoked_and_audited(cli: Cli, any_db: str) -> None:
    made = cli("api-keys", "create", "--db", any_db, "--name", "ci", "--role", "admin")
    assert made.returncode == 0, made
    lines = made.stdout.strip().splitlines()
    key = lines[-1]
    assert KEY.match(key), made  # alone on the last line
    assert "shown once" in made.stdout and key not in made.stderr
    other = cli(
        "api-keys", "create", "--db", any_db, "--name", "reader", "--role", "viewer",
        "--expires", "90d",
    )  # fmt: skip
    assert other.returncode == 0, other
    other_key = other.stdout.strip().splitlines()[-1]

    bad = cli("api-keys", "create", "--db", any_db, "--name", "x", "--role", "viewer",
              "--tenant", "nosuch")  # fmt: skip
    assert bad.returncode != 0 and "nosuch" in bad.stderr, bad
    wrong = cli("api-keys", "create", "--db", any_db, "--name", "x", "--role", "root")
    assert wrong.returncode == 2 and "root" in wrong.stderr, wrong

    listed = cli("api-keys", "list", "--db", any_db, "--json")
    assert listed.returncode == 0, listed
    keys = json.loads(listed.stdout)
    assert [(k["name"], k["role"], k["state"]) for k in keys] == [
        ("ci", "admin", "active"),
        ("reader", "viewer", "active"),
    ]
    assert keys[1]["expires_at"] is not None and keys[0]["expires_at"] is None
    table = cli("api-keys", "list", "--db", any_db)
    for output in (listed.stdout, table.stdout):
        assert key not in output and other_key not in output
        assert key[:12] in output  # its first characters tell it apart

    with DefaultRunner(any_db, execute_tasks=False) as runner:
        assert runner.authenticate_api_key(key).name == "ci"
    revoked = cli("api-keys", "revoke", keys[0]["id"][:8], "--db", any_db)
    assert revoked.returncode == 0, revoked
    assert keys[0]["id"] in revoked.stdout
    with DefaultRunner(any_db, execute_tasks=False) as runner:
        with pytest.raises(AuthenticationError):
            runner.authenticate_api_key(key)
        assert runner.authenticate_api_key(other_key).name == "reader"
    unknown = cli("api-keys", "revoke", "zzzz", "--db", any_db)
    assert unknown.returncode == 2 and "zzzz" in unknown.stderr, unknown

    rows = audit(cli, any_db)
    assert [(r["action"], r["outcome"] == "ok") for r in rows] == [
        ("key.create", True),
        ("key.create", True),
        ("key.create", False),
        ("key.revoke", True),
    ]
    assert rows[0]["target"] == f"{keys[0]['id']} (ci)"
    assert "nosuch" in rows[2]["outcome"]
    assert all(r["actor"] == me() for r in rows)
    everything = json.dumps(rows)
    assert key not in everything and other_key not in everything

    jsonl = cli("audit", "export", "--db", any_db, "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == list(reversed(rows))
    as_csv = cli("audit", "export", "--db", any_db, "--format", "csv")
    assert as_csv.returncode == 0, as_csv
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [p["action"] for p in reversed(parsed)] == [r["action"] for r in rows]
    assert [p["actor"] for p in parsed] == [me()] * 4
    only = audit(cli, any_db, "--action", "key.revoke", "--since", "1h")
    assert [r["action"] for r in only] == ["key.revoke"]
    assert audit(cli, any_db, "--since", "2999-01-01T00:00:00Z") == []


def _schedule_without_worker(cwd: Path, db: str) -> str:
    """Start a run of ``held`` from a submit-only client: running, and no worker alive."""
    code = (
        "import sys; from cloacina import DefaultRunner; import flows_held; "
        "r = DefaultRunner(sys.argv[1], execute_tasks=False); "
        "print(r.schedule_workflow('held')); r.shutdown()"
    )
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    proc = subprocess.run(
        [sys.executable, "-c", code, db],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def test_changing_commands_are_audited(cli: Cli, tmp_path: Path, any_db: str) -> None:
    (tmp_path / "flows_held.py").write_text(HELD, encoding="utf-8")
    eid = _schedule_without_worker(tmp_path, any_db)
    for verb in ("pause", "resume", "cancel"):
        res = cli("executions", verb, eid[:8], "--db", any_db)
        assert res.returncode == 0, res
    again = cli("executions", "cancel", eid, "--db", any_db)
    assert again.returncode == 1, again
    pruned = cli("executions", "prune", "--older-than", "0s", "--db", any_db)
    assert pruned.returncode == 0, pruned

    assert cli("tenant", "create", "acme", "--db", any_db).returncode == 0
    removed = cli("tenant", "remove", "acme", "--yes", "--db", any_db)
    assert removed.returncode == 0, removed

    assert cli("package", "new", "audited_pkg", "--dir", "proj").returncode == 0
    built = cli("package", "build", "proj", "--json")
    assert built.returncode == 0, built
    archive = json.loads(built.stdout)["file"]
    version = json.loads(built.stdout)["version"]
    for args in (
        ("package", "register", archive),
        ("package", "promote", "audited_pkg", version),
        ("package", "unregister", "audited_pkg", version),
    ):
        res = cli(*args, "--db", any_db)
        assert res.returncode == 0, res

    got = [
        (r["action"], r["target"], r["outcome"] == "ok", r["tenant"]) for r in audit(cli, any_db)
    ]
    assert got == [
        ("run.pause", eid, True, "public"),
        ("run.resume", eid, True, "public"),
        ("run.cancel", eid, True, "public"),
        ("run.cancel", eid, False, "public"),
        ("runs.prune", "finished runs older than 0.0s", True, "public"),
        ("tenant.create", "acme", True, "acme"),
        ("tenant.remove", "acme", True, "acme"),
        ("package.register", f"audited_pkg@{version}", True, "public"),
        ("package.promote", f"audited_pkg@{version}", True, "public"),
        ("package.delete", f"audited_pkg@{version}", True, "public"),
    ], got
    rows = audit(cli, any_db)
    assert all(r["actor"] == me() and r["client"] for r in rows)
    assert "already" in rows[3]["outcome"]
    assert rows[4]["detail"]["removed"] == 1
