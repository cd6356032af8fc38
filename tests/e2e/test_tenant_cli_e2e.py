"""``cloacina tenant create|list|remove``, the global ``--tenant`` option and
``cloacina executions prune`` end to end, on a real SQLite file and a real PostgreSQL
database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner

from .helpers import Cli, Result
from .test_worker_cli_e2e import load_module


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


def ok(res: Result) -> Result:
    assert res.returncode == 0, res
    return res


def tenants(cli: Cli, url: str) -> list[str]:
    rows: list[dict[str, Any]] = json.loads(ok(cli("tenant", "list", "--db", url, "--json")).stdout)
    return [r["tenant"] for r in rows]


def run_ids(cli: Cli, url: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    res = ok(cli("executions", "list", "--db", url, "--json", *args, env=env))
    return [r["execution_id"] for r in json.loads(res.stdout)]


def run_greeting(cli: Cli, url: str, *args: str) -> str:
    res = ok(cli(*args, "run", "greeting", "-m", "flows", "--db", url, "--json"))
    execution_id: str = json.loads(res.stdout)["execution_id"]
    return execution_id


def test_tenant_lifecycle(cli: Cli, flows: Path, url: str, tmp_path: Path) -> None:
    sqlite = url.startswith("sqlite")
    acme_file = tmp_path / "runs.acme.db"

    created = ok(cli("tenant", "create", "acme", "--db", url))
    assert "Created tenant acme" in created.stdout
    assert (str(acme_file) if sqlite else "schema 'acme'") in created.stdout
    assert acme_file.exists() == sqlite
    # The default tenant's database holds the audit log, so creating a tenant (an audited
    # change) also makes the default tenant's database, which then lists as "public".
    assert sorted(tenants(cli, url)) == ["acme", "public"]

    # A run under --tenant acme (the global option) is invisible from the public tenant.
    acme_run = run_greeting(cli, url, "--tenant", "acme")
    public_run = run_greeting(cli, url)
    assert run_ids(cli, url) == [public_run]
    assert run_ids(cli, url, "--tenant", "acme") == [acme_run]
    assert run_ids(cli, url, env={"CLOACINA_TENANT": "acme"}) == [acme_run]
    listed = ok(cli("tenant", "list", "--db", url)).stdout
    assert {"acme", "public"} <= {line.split()[0] for line in listed.splitlines() if line}

    removed = ok(cli("tenant", "remove", "acme", "--db", url, "--yes"))
    assert "Removed tenant acme" in removed.stdout
    assert tenants(cli, url) == ["public"]
    if sqlite:
        assert sorted(p.name for p in tmp_path.glob("runs.acme.db*")) == []
    gone = cli("executions", "list", "--db", url, "--tenant", "acme")
    assert gone.returncode == 2 and "no tenant 'acme'" in gone.stderr, gone


def test_tenant_errors(cli: Cli, flows: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ok(cli("tenant", "create", "acme", "--db", url))
    again = ok(cli("tenant", "create", "acme", "--db", url))
    assert "already exists" in again.stdout
    acme_run = run_greeting(cli, url, "--tenant", "acme")
    shown = cli("executions", "show", acme_run, "--db", url)  # the public database: none yet
    assert shown.returncode == 2 and acme_run not in shown.stdout, shown
    table = ok(cli("executions", "show", acme_run[:8], "--db", url, "--tenant", "acme"))
    assert acme_run in table.stdout and "acme::embedded" in table.stdout

    # Tenants are made only by `tenant create`; names are checked.
    missing = cli("run", "greeting", "-m", "flows", "--db", url, "--tenant", "nobody")
    assert missing.returncode == 2 and "cloacina tenant create nobody" in missing.stderr, missing
    assert not (tmp_path / "runs.nobody.db").exists()
    bad = cli("executions", "list", "--db", url, "--tenant", "Bad-Name")
    assert bad.returncode == 2 and "invalid tenant name" in bad.stderr, bad

    # remove: never public; only with confirmation (none possible without a terminal).
    refused = cli("tenant", "remove", "public", "--db", url, "--yes")
    assert refused.returncode == 2 and "refusing to remove the public tenant" in refused.stderr
    unconfirmed = cli("tenant", "remove", "acme", "--db", url, input="")
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr, unconfirmed
    assert (tmp_path / "runs.acme.db").exists()
    unknown = cli("tenant", "remove", "other", "--db", url, "--yes")
    assert unknown.returncode == 2 and "no tenant 'other'" in unknown.stderr, unknown


def test_prune_removes_finished_runs_of_its_tenant_only(
    cli: Cli, flows: Path, url: str, tmp_path: Path
) -> None:
    load_module(flows)  # the client below schedules its workflows
    ok(cli("tenant", "create", "acme", "--db", url))
    run_greeting(cli, url, "--tenant", "acme")
    failed = cli("--tenant", "acme", "run", "broken", "-m", "flows", "--db", url, "--json")
    assert failed.returncode == 1, failed
    public_run = run_greeting(cli, url)
    with DefaultRunner(url, tenant="acme", execute_tasks=False) as runner:
        # Nobody executes it: it stays unfinished, and prune must keep it.
        unfinished = runner.schedule_workflow("sleepy")

    prune = ("executions", "prune", "--db", url, "--tenant", "acme")
    kept = ok(cli(*prune, "--older-than", "1h"))
    assert "Removed 0 finished runs older than 1h" in kept.stdout
    dry = ok(cli(*prune, "--older-than", "0s", "--dry-run"))
    assert "Would remove 2 finished runs" in dry.stdout
    pruned = ok(cli(*prune, "--older-than", "0s"))
    assert "Removed 2 finished runs older than 0s" in pruned.stdout
    assert run_ids(cli, url, "--tenant", "acme") == [unfinished]
    assert run_ids(cli, url) == [public_run]  # another tenant: untouched


def test_read_commands_create_no_database(cli: Cli, url: str, tmp_path: Path) -> None:
    for command in (("executions", "list"), ("workers", "list")):
        res = cli(*command, "--db", url)
        assert res.returncode == 2, res
        assert "no Cloacina database in" in res.stderr or "no database at" in res.stderr, res
    if url.startswith("sqlite"):
        assert not (tmp_path / "runs.db").exists()
    else:
        assert tenants(cli, url) == []  # no schema got Cloacina's tables
