"""``cloacina demo`` end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .helpers import run_cli


def test_demo_runs_the_pipeline_and_prints_the_report(tmp_path: Path) -> None:
    res = run_cli("demo", cwd=tmp_path)
    assert res.returncode == 0, res
    out = res.stdout
    for step in ("Define", "Schedule", "Execute", "Report"):
        assert step in out
    assert "collect_data → process_data → generate_report" in out
    for task_id in ("collect_data", "process_data", "generate_report"):
        assert f"{task_id} started" in out
        assert re.search(rf"{task_id} completed in \d+ms", out), out
    assert '"total_processed": 950' in out
    assert '"success_rate": "95%"' in out
    assert re.search(r'"report_id": "RPT_\d+"', out)
    # the temporary database is gone, and nothing was written to the working directory
    match = re.search(r"temporary database sqlite:///(\S+)", out)
    assert match, out
    assert not Path(match.group(1)).exists()
    assert not (tmp_path / "cloacina.db").exists()


def test_demo_on_a_given_database_is_inspectable(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    res = run_cli("demo", "--db", db, cwd=tmp_path)
    assert res.returncode == 0, res
    res = run_cli("executions", "list", "--db", db, "--json", cwd=tmp_path)
    rows = json.loads(res.stdout)
    assert [(r["workflow"], r["status"]) for r in rows] == [("data_processing", "completed")]
    res = run_cli(
        "executions", "show", rows[0]["execution_id"][:8], "--db", db, "--json", cwd=tmp_path
    )
    data = json.loads(res.stdout)
    assert list(data["tasks"]) == ["collect_data", "process_data", "generate_report"]
    assert [t["max_attempts"] for t in data["tasks"].values()] == [2, 3, 1]
    assert data["final_context"]["raw_data"]["records"] == 1000
    assert data["final_context"]["processed_data"]["original_count"] == 1000
    assert data["final_context"]["final_report"]["summary"] == {
        "total_processed": 950,
        "success_rate": "95%",
    }
