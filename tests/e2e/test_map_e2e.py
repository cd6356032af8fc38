"""A mapped task (``map_over``) through the CLI: ``run`` executes it, ``executions show``
and ``executions watch`` summarise its instances (counts by status, the failed indexes)
instead of printing a line per instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import run_cli

FLOWS = """
from cloacina import Context, TaskError, task, workflow


@workflow(name="mapped")
class mapped:
    @task(id="make")
    def make(context: Context) -> None:
        context.insert("items", list(range(3000)))

    @task(id="square", dependencies=["make"], map_over="items", allow_partial=True)
    def square(context: Context) -> int:
        if context["item"] in (7, 2001):
            raise TaskError(f"item {context['item']} is odd", retryable=False)
        return context["item"] ** 2
"""


@pytest.fixture(scope="module")
def mapped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    cwd = tmp_path_factory.mktemp("mapped")
    (cwd / "flows.py").write_text(FLOWS, encoding="utf-8")
    db = f"sqlite:///{cwd / 'map.db'}"
    res = run_cli("run", "mapped", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert res.returncode == 0, res
    data = json.loads(res.stdout)
    assert data["final_context"]["square"][:3] == [0, 1, 4]
    assert data["final_context"]["square"][7] is None
    return cwd, db, data["execution_id"]


def test_show_summarises_the_instances(mapped_run: tuple[Path, str, str]) -> None:
    cwd, db, eid = mapped_run
    res = run_cli("executions", "show", eid, "--db", db, cwd=cwd)
    assert res.returncode == 0, res
    out = res.stdout
    assert "3000 instances: 2998 completed, 2 failed" in out, out
    assert "failed indexes 7, 2001" in out, out
    assert "square[" not in out  # no line per instance
    assert len(out.splitlines()) < 40

    res = run_cli("executions", "show", eid, "--db", db, "--json", cwd=cwd)
    assert res.returncode == 0, res
    task = json.loads(res.stdout)["tasks"]["square"]
    assert task["instances"] == {
        "total": 3000,
        "counts": {"completed": 2998, "failed": 2},
        "failed_indexes": [7, 2001],
        "failed_more": False,
    }


def test_watch_summarises_the_instances(mapped_run: tuple[Path, str, str]) -> None:
    cwd, db, eid = mapped_run
    res = run_cli("executions", "watch", eid, "--db", db, cwd=cwd)
    assert res.returncode == 0, res
    assert "square[" not in res.stdout
    assert "square mapped over 3000 items" in res.stdout, res.stdout
    assert len(res.stdout.splitlines()) < 40
