"""``cloacina executions logs`` end to end: every task's latest attempt under a header, one
task's attempt, the errors, and ``--follow`` printing a task's lines while it still runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)

CHATTY = textwrap.dedent(
    """
    import logging
    import os
    import sys
    import time
    from pathlib import Path

    from cloacina import Context, RetryPolicy, current_task, task, workflow


    @workflow(name="chatty")
    class chatty:
        @task(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
        def fetch(context: Context) -> None:
            print(f"fetch attempt {current_task().attempt}")
            if current_task().attempt == 1:
                raise ConnectionError("flaky")

        @task(dependencies=["fetch"])
        def report(context: Context) -> None:
            logging.getLogger("chatty").warning("report written")
            print("done", file=sys.stderr)

        @task(dependencies=["fetch"])
        def quiet(context: Context) -> None:
            pass


    @workflow(name="waiting")
    class waiting:
        @task()
        def wait_for_go(context: Context) -> None:
            print("waiting for go", flush=True)
            go = Path(os.environ["GO_FILE"])
            deadline = time.monotonic() + 60
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            print("got go")
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8", **extra})
    return env


@pytest.fixture
def chatty(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(CHATTY, encoding="utf-8")
    return tmp_path


def test_logs_of_every_task_and_of_one_attempt(chatty: Path, cli: Cli, db: str) -> None:
    run = cli("run", "chatty", "-m", "flows", "--db", db, "--json")
    assert run.returncode == 0, run
    eid = json.loads(run.stdout)["execution_id"]

    every = cli("executions", "logs", eid, "--db", db)
    assert every.returncode == 0, every
    out = every.stdout
    assert out.startswith("==> fetch (attempt 2) <==\nfetch attempt 2\n\n"), out
    report = out.split("==> report (attempt 1) <==\n", 1)[1].split("\n\n", 1)[0]
    assert report.splitlines()[0].endswith(" WARNING chatty: report written")
    assert report.splitlines()[1:] == ["done"]
    assert out.endswith("==> quiet (attempt 1) <==\n(no output)\n")

    one = cli("executions", "logs", eid, "--db", db, "--task", "fetch", "--attempt", "1")
    assert (one.returncode, one.stdout) == (0, "fetch attempt 1\n"), one
    latest = cli("executions", "logs", eid[:8], "--db", db, "--task", "fetch")
    assert (latest.returncode, latest.stdout) == (0, "fetch attempt 2\n"), latest

    # A finished run followed: everything, every attempt, then the command ends.
    followed = cli("executions", "logs", eid, "--db", db, "--follow")
    assert followed.returncode == 0, followed
    assert followed.stdout.startswith(
        "==> fetch (attempt 1) <==\nfetch attempt 1\n\n==> fetch (attempt 2) <==\n"
    ), followed.stdout

    bad = cli("executions", "logs", eid, "--db", db, "--attempt", "1")
    assert bad.returncode == 2 and "--attempt needs --task" in bad.stderr, bad
    bad = cli("executions", "logs", eid, "--db", db, "--task", "fetc")
    assert bad.returncode == 2, bad
    assert "has no task 'fetc'; did you mean 'fetch'?" in bad.stderr, bad
    bad = cli("executions", "logs", eid, "--db", db, "--task", "fetch", "--attempt", "3")
    assert bad.returncode == 2 and "no attempt 3: its attempts are 1 to 2" in bad.stderr, bad
    bad = cli("executions", "logs", "ffffffff", "--db", db)
    assert bad.returncode == 2 and "ffffffff" in bad.stderr, bad


def test_follow_prints_a_task_s_lines_while_it_runs(chatty: Path, db: str) -> None:
    go = chatty / "go"
    env = _env(GO_FILE=str(go))
    code = (
        "import sys; from cloacina import DefaultRunner; import flows; "
        "r = DefaultRunner(sys.argv[1], execute_tasks=False); "
        "print(r.schedule_workflow('waiting')); r.shutdown()"
    )
    scheduled = subprocess.run(
        [sys.executable, "-c", code, db],
        cwd=chatty,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scheduled.returncode == 0, scheduled.stderr
    eid = scheduled.stdout.strip()
    cloacina = [sys.executable, "-m", "cloacina"]
    follower = subprocess.Popen(  # before the task has started: it waits for it
        [*cloacina, "executions", "logs", eid, "--db", db, "--task", "wait_for_go", "--follow"],
        cwd=chatty,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = subprocess.Popen(
        [*cloacina, "worker", "-m", "flows", "--db", db, "--poll-interval", "0.1"],
        cwd=chatty,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "waiting for go\n"
        # The task waits for the go file, which does not exist yet: that line came while
        # it ran, and the follow goes on.
        assert not go.exists() and follower.poll() is None
        go.write_text("go")
        rest, err = follower.communicate(timeout=60)
        assert (follower.returncode, rest) == (0, "got go\n"), err
    finally:
        for proc in (follower, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        follower.wait(timeout=30)
