"""The processes a package's tasks run in end with their task and with their runner: a command
task's timeout kills everything the command started (issue 9, item 1), a command does not keep
its task open through the pipes of what it leaves behind, and a runner killed with ``kill -9``
leaves no package process running its task (issue 9, item 6).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
]

PackageFactory = Callable[..., bytes]

SETTINGS: dict[str, Any] = {
    "poll_interval": 0.05,
    "heartbeat_interval": 0.1,
    "stale_claim_threshold": 1.0,
    "shutdown_grace": 5.0,
    "busy_timeout": 10.0,
}

COMMAND_FLOW = """
from cloacina import Context, packaged_workflow, task
from cloacina.packaging.command import command_task


@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="start")
    def start(context: Context) -> None:
        context.insert("started", True)

    work = command_task(id="work", command=["bin/work.sh"], dependencies=["start"], TIMEOUT)
"""

SLEEPY_FLOW = """
import os
import time
from pathlib import Path
from typing import Any

from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="nap")
    def nap(context: Context) -> None:
        Path(context["pidfile"]).write_text(f"{os.getpid()}\\n")
        while True:  # busy in the body: only a signal or os._exit ends this process
            time.sleep(0.05)
"""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def read_pids(path: Path) -> list[int]:
    """The pids a script wrote to ``path``, one a line (once it wrote them all)."""
    text = path.read_text() if path.exists() else ""
    return [int(p) for p in text.split()] if text.endswith("\n") else []


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[Callable[[], DefaultRunner]]:
    made: list[DefaultRunner] = []

    def make() -> DefaultRunner:
        runner = DefaultRunner(f"sqlite:///{tmp_path / 'p.db'}", **SETTINGS)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.shutdown(wait=False)


def command_package(
    tmp_path: Path,
    make_package: PackageFactory,
    package: str,
    script: str,
    timeout: float | None = None,
) -> bytes:
    flow = (
        COMMAND_FLOW.replace("NAME", f"{package}_flow")
        .replace("PKG", package)
        .replace(", TIMEOUT", f", timeout={timeout}" if timeout is not None else "")
    )
    sources = {f"{package}/__init__.py": "", f"{package}/flows.py": textwrap.dedent(flow)}
    work = ("#!/bin/sh\n" + textwrap.dedent(script)).encode()
    return make_package(
        tmp_path, package, "1.0", sources, [f"{package}.flows"], {"bin/work.sh": (work, True)}
    )


# ---- item 1: a command task's timeout ends everything it started ------------------------------
def test_command_timeout_kills_the_commands_children_too(
    tmp_path: Path,
    make_package: PackageFactory,
    runners: Callable[[], DefaultRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CLOACINA_TEST_PIDFILE", str(pidfile))
    script = """\
        cat > /dev/null
        sleep 60 &
        printf '%s\\n' "$!" > "$CLOACINA_TEST_PIDFILE"
        wait
        echo '{}'
        """
    runner = runners()
    runner.register_workflow(command_package(tmp_path, make_package, "cmd_to_pkg", script, 2))
    started = time.monotonic()
    result = runner.execute("cmd_to_pkg_flow", timeout=60)
    elapsed = time.monotonic() - started
    pids = read_pids(pidfile)
    try:
        assert result.status == "failed"
        error = result.tasks["work"].error or ""
        assert "timed out" in error, error
        # The task ends at its timeout, not when the `sleep 60` its script started ends.
        assert elapsed < 15, elapsed
        assert pids, "the script did not record its child"
        wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "the command's child to die")
    finally:
        kill_all(pids)


def test_cancelling_the_run_kills_the_commands_process_group(
    tmp_path: Path,
    make_package: PackageFactory,
    runners: Callable[[], DefaultRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CLOACINA_TEST_PIDFILE", str(pidfile))
    script = """\
        cat > /dev/null
        sleep 60 &
        printf '%s\\n%s\\n' "$$" "$!" > "$CLOACINA_TEST_PIDFILE"
        wait
        echo '{}'
        """
    runner = runners()
    runner.register_workflow(command_package(tmp_path, make_package, "cmd_cx_pkg", script))
    execution_id = runner.schedule_workflow("cmd_cx_pkg_flow")
    pids: list[int] = []
    try:
        wait_for(lambda: bool(read_pids(pidfile)), 30, "the command to start")
        pids = read_pids(pidfile)
        runner.cancel(execution_id)
        wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "the cancelled command to die")
        assert runner.wait(execution_id, timeout=30).status == "cancelled"
    finally:
        kill_all(pids)


def test_command_that_leaves_a_child_holding_its_output_finishes_at_once(
    tmp_path: Path,
    make_package: PackageFactory,
    runners: Callable[[], DefaultRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CLOACINA_TEST_PIDFILE", str(pidfile))
    # The background sleep inherits stdout: the task must not wait for it to close.
    script = """\
        cat > /dev/null
        sleep 60 &
        printf '%s\\n' "$!" > "$CLOACINA_TEST_PIDFILE"
        echo '{"done": true}'
        """
    runner = runners()
    runner.register_workflow(command_package(tmp_path, make_package, "cmd_bg_pkg", script))
    started = time.monotonic()
    result = runner.execute("cmd_bg_pkg_flow", timeout=60)
    elapsed = time.monotonic() - started
    pids = read_pids(pidfile)
    try:
        assert result.status == "completed", result.tasks["work"].error
        assert result.final_context["done"] is True
        assert elapsed < 15, elapsed
        # What the command left running in its process group ends with it.
        wait_for(lambda: not any(pid_alive(p) for p in pids), 5, "the leftover child to die")
    finally:
        kill_all(pids)


def test_command_whose_child_left_the_group_does_not_hold_the_task(
    tmp_path: Path,
    make_package: PackageFactory,
    runners: Callable[[], DefaultRunner],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not Path("/usr/bin/setsid").exists() and not Path("/bin/setsid").exists():
        pytest.skip("needs setsid(1)")
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CLOACINA_TEST_PIDFILE", str(pidfile))
    # A child in a session of its own escapes the group kill and keeps the pipes open.
    script = """\
        cat > /dev/null
        setsid sleep 60 &
        printf '%s\\n' "$!" > "$CLOACINA_TEST_PIDFILE"
        echo '{"done": true}'
        """
    runner = runners()
    runner.register_workflow(command_package(tmp_path, make_package, "cmd_sid_pkg", script, 30))
    started = time.monotonic()
    result = runner.execute("cmd_sid_pkg_flow", timeout=60)
    elapsed = time.monotonic() - started
    try:
        assert result.status == "completed", result.tasks["work"].error
        assert result.final_context["done"] is True
        assert elapsed < 15, elapsed
    finally:
        kill_all(read_pids(pidfile))


def test_command_exit_status_and_signal_pass_through(
    tmp_path: Path, make_package: PackageFactory, runners: Callable[[], DefaultRunner]
) -> None:
    runner = runners()
    script = """\
        cat > /dev/null
        kill -SEGV $$
        """
    runner.register_workflow(command_package(tmp_path, make_package, "cmd_sig_pkg", script))
    result = runner.execute("cmd_sig_pkg_flow", timeout=60)
    assert result.status == "failed"
    error = result.tasks["work"].error or ""
    assert f"was killed by SIGSEGV (exit code -{int(signal.SIGSEGV)})" in error, error


# ---- item 6: package processes die with their runner ------------------------------------------
RUNNER_SCRIPT = """
import sys, time
from pathlib import Path
from typing import Any
from cloacina import DefaultRunner

url, package, workflow, pidfile = sys.argv[1:5]
runner = DefaultRunner(url, poll_interval=0.05, heartbeat_interval=0.1,
                       stale_claim_threshold=1.0)
runner.register_workflow(Path(package).read_bytes())
runner.schedule_workflow(workflow, {"pidfile": pidfile})
print("scheduled", flush=True)
time.sleep(600)
"""


def run_and_kill_runner(tmp_path: Path, data: bytes, workflow: str, pidfile: Path) -> list[int]:
    """Start a runner process that runs ``workflow`` of package ``data``; once the task wrote
    its pids to ``pidfile``, kill the runner with SIGKILL. The pids the task wrote."""
    package = tmp_path / "pkg.cloacina"
    package.write_bytes(data)
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER_SCRIPT, url, str(package), workflow, str(pidfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: bool(read_pids(pidfile)) or proc.poll() is not None, 30, "the task")
        assert proc.poll() is None, proc.communicate()
        pids = read_pids(pidfile)
        assert pids and all(pid_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.communicate()
    return pids


def test_package_process_dies_with_a_runner_killed_mid_task(
    tmp_path: Path, make_package: PackageFactory
) -> None:
    sources = {
        "nap_pkg/__init__.py": "",
        "nap_pkg/flows.py": SLEEPY_FLOW.replace("NAME", "nap_flow").replace("PKG", "nap_pkg"),
    }
    data = make_package(tmp_path, "nap_pkg", "1.0", sources, ["nap_pkg.flows"])
    pids: list[int] = []
    try:
        # kill -9 of the runner while its package process is busy in the task body
        pids = run_and_kill_runner(tmp_path, data, "nap_flow", tmp_path / "pids")
        wait_for(lambda: not pid_alive(pids[0]), 5, "the package process to die with its runner")
    finally:
        kill_all(pids)


def test_command_task_dies_with_a_runner_killed_mid_task(
    tmp_path: Path, make_package: PackageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("CLOACINA_TEST_PIDFILE", str(pidfile))
    script = """\
        cat > /dev/null
        sleep 60 &
        printf '%s\\n%s\\n' "$$" "$!" > "$CLOACINA_TEST_PIDFILE"
        wait
        echo '{}'
        """
    data = command_package(tmp_path, make_package, "cmd_kill_pkg", script)
    pids: list[int] = []
    try:
        pids = run_and_kill_runner(tmp_path, data, "cmd_kill_pkg_flow", pidfile)
        # Both the command (the shell) and what it started (the sleep) end with the runner.
        wait_for(
            lambda: not any(pid_alive(p) for p in pids), 5, "the command to die with its runner"
        )
    finally:
        kill_all(pids)


def test_package_process_busy_in_a_task_exits_when_its_stdin_closes(tmp_path: Path) -> None:
    """The watch of the runner's pipe, which covers systems without ``PR_SET_PDEATHSIG``:
    the serve loop reads no request while a body runs, yet closing stdin ends the process."""
    import json

    from cloacina.packaging import protocol

    lib = tmp_path / "lib"
    (lib / "nap_pkg").mkdir(parents=True)
    (lib / "nap_pkg" / "__init__.py").write_text("")
    flows = SLEEPY_FLOW.replace("NAME", "pipe_nap_flow").replace("PKG", "nap_pkg")
    (lib / "nap_pkg" / "flows.py").write_text(flows)
    pidfile = tmp_path / "pids"
    serve = [sys.executable, "-I", "-m", "cloacina.packaging.worker", "serve"]
    proc = subprocess.Popen(
        [*serve, "--parent-pid", str(os.getpid()), "--lib", str(lib), "--modules", "nap_pkg.flows"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = protocol.read(proc.stdout)
        assert hello is not None and hello.get("ready"), hello
        request = {
            "id": 1,
            "workflow": "pipe_nap_flow",
            "task": "nap",
            "execution_id": "e1",
            "attempt": 1,
            "recovery": 0,
            "deps_total": 0,
            "deps_failed": 0,
            "deps_skipped": 0,
            "namespace": "public::nap_pkg::pipe_nap_flow::nap",
            "inputs": [json.dumps({"pidfile": str(pidfile)})],
        }
        proc.stdin.write(protocol.encode(request))
        proc.stdin.flush()
        wait_for(lambda: bool(read_pids(pidfile)), 30, "the task to start")
        proc.stdin.close()  # what the runner's death does to the pipe
        proc.wait(timeout=5)
    finally:
        proc.kill()
        proc.wait()
