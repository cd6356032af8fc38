"""Listings for people and scripts: ``executions list --since``, ``--json`` on every
listing, and tables that keep names and ids whole at 80 columns (issue 9, items 15, 28)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from cloacina.model.status import ExecutionStatus
from cloacina.store import open_store
from cloacina.store.records import NewTask, WorkerRow

from .helpers import FLOWS, run_cli

pytestmark = pytest.mark.timeout(120)

LONG = "a_rather_long_workflow_name_that_must_stay_whole_" + "x" * 40


def _insert_run(db: str, workflow: str, created: float, status: str | None = None) -> str:
    """A run created at ``created`` (epoch seconds), straight into the database."""
    store = open_store(db)
    try:
        eid = str(uuid.uuid4())
        with store.write() as tx:
            tx.create_execution(
                eid,
                tenant="public",
                package="embedded",
                workflow_name=workflow,
                workflow_version="v1",
                input_json="{}",
                tasks=[NewTask("only", 0, (), 1)],
                now=created,
            )
            if status is not None:
                tx.finish_run(
                    eid, ExecutionStatus(status), created + 1, final_json=None, error="it broke"
                )
        return eid
    finally:
        store.close()


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    cwd = tmp_path_factory.mktemp("listing")
    (cwd / "flows.py").write_text(FLOWS, encoding="utf-8")
    db = f"sqlite:///{cwd / 'listing.db'}"
    ok = run_cli("run", "greeting", "-m", "flows", "--db", db, "--json", cwd=cwd)
    failed = run_cli("run", "broken", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert ok.returncode == 0 and failed.returncode == 1, (ok, failed)
    week = 7 * 86400
    ids = {
        "ok": json.loads(ok.stdout)["execution_id"],
        "failed": json.loads(failed.stdout)["execution_id"],
        "old_failed": _insert_run(db, "broken", time.time() - week, "failed"),
        "long": _insert_run(db, LONG, time.time() - 3 * 86400, "failed"),
    }
    return cwd, db, ids


def _ids(cwd: Path, db: str, *args: str) -> list[str]:
    res = run_cli("executions", "list", "--db", db, "--json", *args, cwd=cwd)
    assert res.returncode == 0, res
    return [r["execution_id"] for r in json.loads(res.stdout)]


def test_list_since_a_duration_or_a_date(listing: tuple[Path, str, dict[str, str]]) -> None:
    cwd, db, ids = listing
    assert _ids(cwd, db, "--since", "1d") == [ids["failed"], ids["ok"]]
    assert _ids(cwd, db, "--since", "1d", "--status", "failed") == [ids["failed"]]
    assert _ids(cwd, db, "--since", "1d", "--status", "failed", "--workflow", "broken") == [
        ids["failed"]
    ]
    assert _ids(cwd, db, "--since", "4d", "--status", "failed") == [ids["failed"], ids["long"]]
    assert _ids(cwd, db, "--since", "30d", "--workflow", "broken") == [
        ids["failed"],
        ids["old_failed"],
    ]
    assert _ids(cwd, db, "--since", "2999-01-01") == []
    assert len(_ids(cwd, db, "--since", "2000-01-01T00:00+00:00")) == 4

    res = run_cli("executions", "list", "--db", db, "--since", "yesterday", cwd=cwd)
    assert res.returncode == 2, res
    assert "neither a duration" in res.stderr

    res = run_cli("executions", "list", "--db", db, "--since", "2999-01-01", cwd=cwd)
    assert res.returncode == 0 and "created since 2999-01-01" in res.stdout, res


def test_list_until_search_and_pages(listing: tuple[Path, str, dict[str, str]]) -> None:
    cwd, db, ids = listing
    newest_first = [ids["failed"], ids["ok"], ids["long"], ids["old_failed"]]
    assert _ids(cwd, db) == newest_first
    assert _ids(cwd, db, "--until", "1d") == [ids["long"], ids["old_failed"]]
    assert _ids(cwd, db, "--since", "5d", "--until", "1d") == [ids["long"]]
    assert _ids(cwd, db, "--search", "IT BROKE") == [ids["long"], ids["old_failed"]]
    assert _ids(cwd, db, "-q", ids["ok"][9:20]) == [ids["ok"]]  # text in the id
    assert _ids(cwd, db, "-q", "nothing like it") == []

    # A page at a time: each names the next one's cursor, the last names none.
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(len(newest_first)):
        res = run_cli("executions", "list", "--db", db, "-n", "1", *cursor, cwd=cwd)
        assert res.returncode == 0, res
        seen += [eid for eid in newest_first if eid[:8] in res.stdout]
        marker = "--cursor "
        if marker not in res.stdout:
            break
        token = res.stdout.split(marker, 1)[1].split(")")[0].strip()
        assert token
        cursor = ["--cursor", token]
    assert seen == newest_first, seen
    assert "--cursor" not in res.stdout

    # --json stays one JSON document on stdout; the next cursor goes to stderr.
    res = run_cli("executions", "list", "--db", db, "--json", "-n", "3", cwd=cwd)
    assert [r["execution_id"] for r in json.loads(res.stdout)] == newest_first[:3]
    token = res.stderr.split("--cursor ", 1)[1].split(")")[0].strip()
    res = run_cli("executions", "list", "--db", db, "--json", "--cursor", token, cwd=cwd)
    assert [r["execution_id"] for r in json.loads(res.stdout)] == newest_first[3:]
    assert "--cursor" not in res.stderr

    res = run_cli("executions", "list", "--db", db, "--cursor", "garbage!", cwd=cwd)
    assert res.returncode == 2 and "invalid cursor" in res.stderr, res


NARROW = {"COLUMNS": "80"}


def _column(stdout: str, header: str, next_header: str) -> list[str]:
    """The cells of one column of a table, each folded cell joined back into one string
    (a line with text in other columns starts a new row; the others continue it)."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    head = lines[rule - 1]
    start = head.index(header)
    end = head.index(next_header, start + len(header))
    cells: list[str] = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        piece = line[start:end].strip()
        if (line[:start] + line[end:]).strip() or not cells:  # other cells: a new row
            cells.append(piece)
        else:
            cells[-1] += piece
    return cells


def test_executions_list_at_80_columns_keeps_names_and_ids_whole(
    listing: tuple[Path, str, dict[str, str]],
) -> None:
    cwd, db, ids = listing
    res = run_cli("executions", "list", "--db", db, env=NARROW, cwd=cwd)
    assert res.returncode == 0, res
    assert max(len(line) for line in res.stdout.splitlines()) <= 80, res
    assert LONG in _column(res.stdout, "workflow", "status"), res  # whole, folded
    for eid in ids.values():
        assert eid[:8] in res.stdout
    assert "failed" in res.stdout and "completed" in res.stdout


def test_executions_show_at_80_columns_keeps_names_whole(
    listing: tuple[Path, str, dict[str, str]],
) -> None:
    cwd, db, ids = listing
    res = run_cli("executions", "show", ids["long"], "--db", db, "--events", env=NARROW, cwd=cwd)
    assert res.returncode == 0, res
    assert max(len(line) for line in res.stdout.splitlines()) <= 80, res
    assert ids["long"] in res.stdout
    assert LONG in res.stdout.replace("\n", "").replace(" ", ""), res


def test_workers_list_at_80_columns_keeps_the_id_and_pid(
    listing: tuple[Path, str, dict[str, str]],
) -> None:
    cwd, db, _ids = listing
    host = "worker-pod-" + "k" * 50 + ".cluster.local"
    worker_id = f"{host}:4242424:abcdef12"[-64:]
    store = open_store(db)
    try:
        now = time.time()
        store.register_worker(
            WorkerRow(
                id=worker_id,
                host=host,
                pid=4242424,
                status="running",
                started_at=now,
                last_heartbeat=now,
                running_tasks=3,
                max_tasks=16,
                version="0.1.0",
                stopped_at=None,
            )
        )
    finally:
        store.close()
    res = run_cli("workers", "list", "--db", db, env=NARROW, cwd=cwd)
    assert res.returncode == 0, res
    assert max(len(line) for line in res.stdout.splitlines()) <= 80, res
    assert worker_id in _column(res.stdout, "id", "host"), res
    # It holds no task row, whatever it reported (the tasks it holds now are counted).
    for cell in ("4242424", "0/16", "running"):
        assert cell in res.stdout, res
    res = run_cli("workers", "list", "--db", db, "--json", env=NARROW, cwd=cwd)
    assert [w["pid"] for w in json.loads(res.stdout)] == [4242424]


def test_workflows_list_at_80_columns_keeps_names_whole(
    listing: tuple[Path, str, dict[str, str]],
) -> None:
    cwd, db, _ids = listing
    (cwd / "longflows.py").write_text(
        "from cloacina import Context, task, workflow\n\n"
        f"@workflow(name={LONG!r})\n"
        "class long_one:\n"
        "    @task()\n"
        "    def only(context: Context) -> None:\n"
        "        pass\n",
        encoding="utf-8",
    )
    res = run_cli("workflows", "list", "-m", "longflows", "--db", db, env=NARROW, cwd=cwd)
    assert res.returncode == 0, res
    assert max(len(line) for line in res.stdout.splitlines()) <= 80, res
    # One row, two folded columns (the source folds too): its pieces, joined.
    assert "".join(_column(res.stdout, "workflow", "source")) == LONG, res
