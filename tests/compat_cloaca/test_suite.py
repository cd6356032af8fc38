"""cloaca's own acceptance suite (suite/, vendored unchanged) on ``cloacina.compat.cloaca``.

As upstream runs it: each scenario file in a pytest process of its own, on a fresh SQLite
file; the multi-tenancy file (28) also with ``CLOACA_BACKEND=postgres`` on a fresh
PostgreSQL database, dropped afterwards. The plugin cloaca_alias.py replaces the suite's
conftest.py: it aliases ``sys.modules["cloaca"]`` and provides ``shared_runner``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite"
#: Tests per scenario file (103 in all), every one expected to pass.
EXPECTED = {
    "01_basic_api": 31,
    "02_single_task_workflow_execution": 1,
    "03_function_based_dag_topology": 1,
    "08_multi_task_workflow_execution": 1,
    "09_context_propagation": 1,
    "10_workflow_error_handling": 1,
    "11_retry_mechanisms": 4,
    "12_workflow_performance": 1,
    "13_complex_dependency_chains": 1,
    "14_trigger_rules": 2,
    "15_workflow_versioning": 1,
    "16_registry_management": 1,
    "17_advanced_error_handling": 1,
    "18_basic_shared_runner_functionality": 1,
    "19_context_passing_runner": 1,
    "20_multiple_workflow_execution_runner": 1,
    "21_success_validation_runner": 1,
    "22_simple_workflow_context_manager": 1,
    "23_multi_task_workflow_dependencies_builder": 1,
    "24_parameterized_workflows": 1,
    "25_async_task_support": 1,
    "26_simple_workflow_execution": 1,
    "27_cron_scheduling": 1,
    "28_multi_tenancy": 13,
    "29_event_triggers": 9,
    "30_task_callbacks": 6,
    "31_task_handle": 9,
    "32_task_invokes_computation_graph": 7,
    "33_retry_condition": 2,
}
#: Upstream gives each file 180 s; each test gets 60 s here (upstream: 10 s, on a quiet CI).
FILE_TIMEOUT = 180


def run_file(name: str, backend: str, env: dict[str, str] | None = None) -> dict[str, int]:
    """Run one scenario file; its summary counts (``passed``, ``failed``...)."""
    path = SUITE / f"test_scenario_{name}.py"
    assert path.exists(), f"{path} is missing"
    child_env = {
        **os.environ,
        **(env or {}),
        "CLOACA_BACKEND": backend,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    child_env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "cloaca_alias",
        "--noconftest",  # the suite's conftest.py is replaced by the plugin
        "-c",
        os.devnull,  # none of this project's pytest settings
        "--rootdir",
        str(SUITE),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--timeout",
        "60",
        str(path),
    ]
    proc = subprocess.run(
        command,
        cwd=SUITE,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=FILE_TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    counts = {
        word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", output)
    }
    if proc.returncode not in (0, 5) or counts.get("failed") or counts.get("error"):
        pytest.fail(f"scenario {name} ({backend}): exit {proc.returncode}\n{output[-6000:]}")
    return counts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_file_on_sqlite(name: str) -> None:
    counts = run_file(name, "sqlite")
    if name == "28_multi_tenancy":  # upstream skips the whole file without PostgreSQL
        assert counts == {"skipped": EXPECTED[name]}, counts
    else:
        assert counts == {"passed": EXPECTED[name]}, counts


@pytest.mark.parametrize(
    "name", ["28_multi_tenancy", "13_complex_dependency_chains", "27_cron_scheduling"]
)
def test_scenario_file_on_postgres(name: str, postgres_database: Callable[[], str]) -> None:
    """``CLOACA_BACKEND=postgres`` with the runner on a fresh database: the multi-tenancy
    file (which upstream runs only there), and two files that work the store hardest."""
    counts = run_file(name, "postgres", {"CLOACA_TEST_PG_URL": postgres_database()})
    assert counts == {"passed": EXPECTED[name]}, counts


def test_the_suite_is_vendored_whole() -> None:
    """Every scenario file upstream has is here, and counted above."""
    files = sorted(p.stem.removeprefix("test_scenario_") for p in SUITE.glob("test_scenario_*.py"))
    assert files == sorted(EXPECTED)
    assert sum(EXPECTED.values()) == 103
    assert (SUITE / "LICENSE").exists() and (SUITE / "utilities.py").exists()
