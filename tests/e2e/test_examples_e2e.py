"""The packaged demo of examples/simple_packaged_demo, run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "simple_packaged_demo"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example project, so the test writes nothing into the repository."""
    target = tmp_path / "simple_packaged_demo"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    return target


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SIMPLE_DEMO_STEP_DELAY"] = "0.05"
    env["COLUMNS"] = "120"
    return env


@pytest.mark.timeout(120)
def test_end_to_end_demo_builds_registers_runs_and_reports(example: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "end_to_end_demo.py"],
        cwd=example,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=110,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("1. Define", "Package", "4. Load", "5. Execute", "6. Monitor"):
        assert step in out
    assert (example / "dist" / "simple_demo-1.0.0.cloacina").is_file()
    assert "holds workflows: data_processing" in out
    assert "run completed" in out
    assert "RPT_" in out
    assert "950 of 1000 records" in out
    assert "95%" in out


@pytest.mark.timeout(120)
def test_the_example_projects_own_tests_pass(example: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=example,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout


@pytest.mark.timeout(120)
def test_package_workflow_script_builds_reproducibly(example: Path) -> None:
    def build() -> bytes:
        subprocess.run(
            [sys.executable, "package_workflow.py"],
            cwd=example,
            check=True,
            env=_env(),
            capture_output=True,
        )
        return (example / "dist" / "simple_demo-1.0.0.cloacina").read_bytes()

    assert build() == build()


@pytest.mark.timeout(120)
def test_command_task_example_runs_its_shell_script(tmp_path: Path) -> None:
    project = tmp_path / "command_task_demo"
    shutil.copytree(
        EXAMPLE.parent / "command_task_demo",
        project,
        ignore=shutil.ignore_patterns("dist", "__pycache__"),
    )
    db = f"sqlite:///{tmp_path}/demo.db"

    def cloacina(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cloacina", *args],
            cwd=project,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=100,
            check=False,
        )

    built = cloacina("package", "build", ".")
    assert built.returncode == 0, built.stdout + built.stderr
    registered = cloacina("package", "register", "dist/enrichment-0.1.0.cloacina", "--db", db)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    ran = cloacina("run", "enrich_orders", "--db", db, "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert '"summary": "3 orders, score 208"' in ran.stdout
