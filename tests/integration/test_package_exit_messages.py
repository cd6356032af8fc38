"""How a package process that dies is described (issue 9, item 24): by the signal's name, not
only a negative exit code."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import DefaultRunner
from cloacina.packaging.worker import describe_exit

pytestmark = pytest.mark.timeout(60)

FLOW = """\
import os
import signal

from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="crash_flow", package="crash_pkg")
class crash_flow:
    @task(id="crash")
    def crash(context: Context) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-int(signal.SIGSEGV)) == "killed by SIGSEGV (exit code -11)"
    assert describe_exit(-int(signal.SIGKILL)) == "killed by SIGKILL (exit code -9)"
    assert describe_exit(-99) == "killed by signal 99 (exit code -99)"
    assert describe_exit(None) == "exit status unknown"


def test_a_package_process_that_segfaults_is_said_to_be_killed_by_sigsegv(
    tmp_path: Path,
    make_package: Callable[..., bytes],
    make_package_runner: Callable[..., DefaultRunner],
) -> None:
    runner = make_package_runner()
    src = {"crash_pkg/__init__.py": "", "crash_pkg/flows.py": textwrap.dedent(FLOW)}
    runner.register_workflow(make_package(tmp_path, "crash_pkg", "1.0", src, ["crash_pkg.flows"]))
    result = runner.execute("crash_flow", timeout=30)
    assert result.status == "failed"
    error = result.tasks["crash"].error or ""
    assert "died while running it (killed by SIGSEGV (exit code -11))" in error, error
