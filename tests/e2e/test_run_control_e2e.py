"""``cloacina run``: --json keeps stdout for the JSON document, SIGTERM cancels the run like
Ctrl-C, and a run cut short by --timeout says so (issue 9, items 11, 12 and 13)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)

NOISY = textwrap.dedent(
    """
    import asyncio
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow


    @workflow(name="noisy")
    class noisy:
        @task()
        def talk(context: Context) -> None:
            print("sync task says hello")
            print("sync task writes to sys.stdout", file=sys.stdout, flush=True)
            os.write(1, b"raw write to fd 1\\n")
            subprocess.run([sys.executable, "-c", "print('child process prints')"], check=True)
            context.insert("talked", True)

        @task(dependencies=["talk"])
        async def chat(context: Context) -> None:
            print("async task says hello")
            context.insert("chatted", True)


    @workflow(name="held")
    class held:
        @task()
        def hold(context: Context) -> None:
            Path(os.environ["STARTED_MARKER"]).write_text("started")
            time.sleep(60)
    """
)


@pytest.fixture
def noisy(tmp_path: Path) -> Path:
    path = tmp_path / "noisy.py"
    path.write_text(NOISY, encoding="utf-8")
    return path


def test_json_stdout_holds_only_the_document_when_tasks_print(
    cli: Cli, noisy: Path, db: str
) -> None:
    res = cli("run", "noisy", "-m", "noisy", "--db", db, "--json")
    assert res.returncode == 0, res
    data = json.loads(res.stdout)  # nothing but the JSON document
    assert data["status"] == "completed"
    assert data["final_context"] == {"talked": True, "chatted": True}
    for line in (
        "sync task says hello",
        "sync task writes to sys.stdout",
        "raw write to fd 1",
        "child process prints",
        "async task says hello",
    ):
        assert line in res.stderr, res  # task output is kept, on stderr


def test_without_json_task_output_stays_on_stdout(cli: Cli, noisy: Path, db: str) -> None:
    res = cli("run", "noisy", "-m", "noisy", "--db", db)
    assert res.returncode == 0, res
    assert "sync task says hello" in res.stdout and "child process prints" in res.stdout


def test_timeout_says_the_run_timed_out(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "sleepy", "-m", "flows", "--db", db, "--timeout", "0.5", "--json")
    assert res.returncode == 1, res
    data = json.loads(res.stdout)
    assert data["status"] == "cancelled"
    assert "timed out" in data["error"] and "0.5s" in data["error"], data["error"]
    assert "cancelled by request" not in res.output
    shown = cli("executions", "show", data["execution_id"], "--db", db)
    assert "timed out: did not finish within 0.5s" in shown.stdout, shown


def _start_held_run(tmp_path: Path, db: str) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "STARTED_MARKER": str(marker)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "run", "held", "-m", "noisy", "--db", db],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    return proc, marker


@pytest.mark.parametrize(
    ("signum", "said"),
    [(signal.SIGTERM, "terminated (SIGTERM)"), (signal.SIGINT, "interrupted")],
)
def test_sigterm_cancels_the_run_like_ctrl_c(
    cli: Cli, noisy: Path, tmp_path: Path, db: str, signum: int, said: str
) -> None:
    proc, _marker = _start_held_run(tmp_path, db)
    started = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 20  # not held by the 60 s task
    assert proc.returncode == 130, (out, err)
    assert f"{said}: workflow execution" in err and "was cancelled" in err, err
    assert "Traceback" not in err

    listed = cli("executions", "list", "--db", db, "--json")
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["cancelled"], runs
    assert runs[0]["error"] == f"cloacina run was {said}"
