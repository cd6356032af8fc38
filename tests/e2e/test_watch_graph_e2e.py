"""``cloacina workflows graph`` and ``cloacina executions watch`` end to end (subprocesses)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import FLOWS, Cli, run_cli

GRAPH_FLOWS = textwrap.dedent(
    """
    from cloacina import Context, RetryPolicy, task, workflow
    from cloacina.rules import all_done


    @workflow(name="data_processing")
    class data_processing:
        @task(id="collect_data")
        async def collect_data(context: Context) -> None:
            context.insert("raw_data", {"records": 1000})

        @task(id="process_data", dependencies=["collect_data"],
              retry=RetryPolicy(max_attempts=3, initial_delay=0.5))
        def process_data(context: Context) -> None:
            pass

        @task(dependencies=[process_data], timeout=30)
        def generate_report(context: Context) -> None:
            pass


    @workflow(name="diamond")
    class diamond:
        @task()
        def start(context: Context) -> None:
            pass

        @task(dependencies=["start"])
        def left(context: Context) -> None:
            pass

        @task(dependencies=["start"])
        def right(context: Context) -> None:
            pass

        @task(dependencies=["left", "right"], trigger_rule=all_done())
        def join(context: Context) -> None:
            pass


    @workflow(name="fan_out")
    class fan_out:
        @task()
        def root(context: Context) -> None:
            pass
    """
)
FAN_LEAVES = [f"leaf_{i}" for i in range(10)]
GRAPH_FLOWS += "".join(
    f"\n    @task(dependencies=['root'])\n    def {leaf}(context: Context) -> None:\n        pass\n"
    for leaf in FAN_LEAVES
)
GRAPH_FLOWS += (
    f"\n    @task(dependencies={FAN_LEAVES!r})\n    def join(context: Context) -> None:\n"
    "        pass\n"
)

#: A run that waits at its first task until the test creates the file ``go`` next to the
#: module, then runs three 0.3 s tasks one after the other.
GATED_FLOWS = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow

    GATE = Path(__file__).with_name("go")


    @workflow(name="slow")
    class slow:
        @task()
        def wait_for_gate(context: Context) -> None:
            deadline = time.monotonic() + 60
            while not GATE.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never opened the gate")
                time.sleep(0.02)

        @task(dependencies=["wait_for_gate"])
        def step_1(context: Context) -> None:
            time.sleep(0.3)

        @task(dependencies=["step_1"])
        def step_2(context: Context) -> None:
            time.sleep(0.3)

        @task(dependencies=["step_2"])
        def step_3(context: Context) -> None:
            time.sleep(0.3)
    """
)
STEPS = ("step_1", "step_2", "step_3")
STAMP = re.compile(r"^\[\+\d+\.\d\ds\] ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GatedRun = tuple["subprocess.Popen[str]", str, str, Callable[[], None]]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment ``helpers.run_cli`` uses, for CLI processes started in the background."""
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    env.update(extra)
    return env


def cloacina_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cloacina", *args]


# ---- workflows graph -------------------------------------------------------------------------
@pytest.fixture
def graph_flows(tmp_path: Path) -> Path:
    path = tmp_path / "graphflows.py"
    path.write_text(GRAPH_FLOWS, encoding="utf-8")
    return path


def test_graph_text_chain(cli: Cli, graph_flows: Path) -> None:
    res = cli("workflows", "graph", "data_processing", "--module", "graphflows")
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == "data_processing · 3 tasks · 1 chain"
    assert lines[1] == (
        "  collect_data [async] ──▶ process_data [3 attempts] ──▶ generate_report [timeout 30s]"
    )
    assert res.stderr == ""


def test_graph_text_fan_out_and_diamond(cli: Cli, graph_flows: Path) -> None:
    res = cli("workflows", "graph", "fan_out", "-m", str(graph_flows), "--format", "text")
    assert res.returncode == 0, res
    lines = [line.rstrip() for line in res.stdout.splitlines()]
    assert lines[0].startswith("fan_out · 12 tasks · 3 layers · roots: root · leaves: join")
    assert "  layer 1  root" in lines
    assert "  layer 2  leaf_0 ◀── root" in lines
    assert "           leaf_9 ◀── root" in lines
    assert lines[-1] == f"  layer 3  join ◀── {', '.join(FAN_LEAVES)}"

    res = cli("workflows", "graph", "diamond", "-m", "graphflows")
    assert res.returncode == 0, res
    assert "  layer 2  left  ◀── start" in res.stdout
    assert "  layer 3  join ◀── left, right [trigger: all_done]" in res.stdout


def test_graph_mermaid(cli: Cli, graph_flows: Path) -> None:
    res = cli("workflows", "graph", "data_processing", "-m", "graphflows", "-f", "mermaid")
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert "    collect_data --> process_data" in lines
    assert "    process_data --> generate_report" in lines
    assert '    process_data["process_data<br/>3 attempts"]' in lines


def test_graph_dot(cli: Cli, graph_flows: Path) -> None:
    res = cli("workflows", "graph", "diamond", "-m", "graphflows", "--format", "dot")
    assert res.returncode == 0, res
    out = res.stdout
    assert out.startswith('digraph "diamond" {\n    rankdir=LR;\n')
    for edge in ('"start" -> "left"', '"start" -> "right"', '"left" -> "join"'):
        assert f"    {edge};" in out
    assert out.rstrip().endswith("}")


def test_graph_unknown_workflow_and_format(cli: Cli, graph_flows: Path) -> None:
    res = cli("workflows", "graph", "data_procesing", "-m", "graphflows")
    assert res.returncode == 2, res
    assert "unknown workflow 'data_procesing'" in res.stderr
    assert "Did you mean 'data_processing'?" in res.stderr
    res = cli("workflows", "graph", "diamond", "-m", "graphflows", "-f", "svg")
    assert res.returncode == 2, res
    assert "'svg' is not one of" in res.stderr


# ---- executions watch on finished runs -------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """A database with one completed and one failed run: (cwd, db, ok_id, failed_id)."""
    cwd = tmp_path_factory.mktemp("watch_finished")
    (cwd / "flows.py").write_text(FLOWS, encoding="utf-8")
    db = f"sqlite:///{cwd / 'runs.db'}"
    ok = run_cli("run", "greeting", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert ok.returncode == 0, ok
    failed = run_cli("run", "broken", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert failed.returncode == 1, failed
    return cwd, db, json.loads(ok.stdout)["execution_id"], json.loads(failed.stdout)["execution_id"]


def test_watch_completed_run_exits_at_once(finished: tuple[Path, str, str, str]) -> None:
    cwd, db, ok_id, _ = finished
    started = time.monotonic()
    res = run_cli("executions", "watch", ok_id[:8], "--db", db, cwd=cwd, timeout=15)
    assert res.returncode == 0, res
    assert time.monotonic() - started < 10
    lines = res.stdout.splitlines()
    assert lines[0] == f"watching execution {ok_id} (workflow greeting, 2 tasks): completed"
    # The run's history, one line per event, as a log (issue 9.24), then a summary.
    assert all(STAMP.match(line) for line in lines[1:-1]), lines
    assert [STAMP.sub("", line).split(" in ")[0] for line in lines[1:-1]] == [
        "execution started",
        "greet running (attempt 1)",
        "greet completed",
        "shout running (attempt 1)",
        "shout completed",
    ], lines
    assert re.fullmatch(rf"execution {ok_id} completed in \S+: 2 completed", lines[-1])


def test_watch_failed_run_exits_1(finished: tuple[Path, str, str, str]) -> None:
    cwd, db, _, failed_id = finished
    res = run_cli("executions", "watch", failed_id, "--db", db, cwd=cwd, timeout=15)
    assert res.returncode == 1, res
    out = res.stdout
    assert "extract completed in " in out
    assert "transform failed (attempt 2/2): ValueError: transform exploded" in out
    assert "load skipped: 1 of 1 dependencies failed" in out
    last = out.splitlines()[-1]
    assert last.startswith(f"execution {failed_id} failed in ")
    assert "1 completed, 1 failed, 1 skipped" in last
    assert "error: task 'transform' failed: ValueError: transform exploded" in last


def test_watch_unknown_execution(finished: tuple[Path, str, str, str]) -> None:
    cwd, db, _, _ = finished
    res = run_cli("executions", "watch", "nope", "--db", db, cwd=cwd)
    assert res.returncode == 2, res
    assert "no workflow execution with id or id prefix 'nope'" in res.stderr


# ---- executions watch on a running run -------------------------------------------------------
@pytest.fixture
def gated_run(tmp_path: Path) -> Iterator[GatedRun]:
    """``cloacina run slow`` in the background, held at its first task:
    (the run's process, db, execution id, a function that lets the run go on)."""
    (tmp_path / "slowflows.py").write_text(GATED_FLOWS, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = subprocess.Popen(
        cloacina_argv("run", "slow", "-m", "slowflows", "--db", db),
        cwd=tmp_path,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    gate = tmp_path / "go"
    try:
        deadline = time.monotonic() + 45  # generous: the machine may be loaded
        execution_id = ""
        while not execution_id:
            assert time.monotonic() < deadline, "the background run never showed up"
            assert run.poll() is None, run.communicate()
            res = run_cli("executions", "list", "--db", db, "--json", cwd=tmp_path)
            if res.returncode == 0 and json.loads(res.stdout):
                execution_id = json.loads(res.stdout)[0]["execution_id"]
            else:
                time.sleep(0.1)
        yield run, db, execution_id, gate.touch
    finally:
        gate.touch()  # never leave the run waiting
        try:
            run.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()


class LineReader:
    """Lines of a child's stdout, read straight from the pipe with ``os.read``: ``select``
    then sees every byte not yet read (a buffered ``readline`` could hold a second line back
    where ``select`` cannot see it, and the test would wait for it in vain)."""

    def __init__(self, stream: object) -> None:
        assert hasattr(stream, "fileno")
        self.fd: int = stream.fileno()
        self.buffer = b""

    def line(self, deadline: float) -> str:
        """The next line, failing the test when none comes before ``deadline``."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "watch printed nothing in time"
            chunk = os.read(self.fd, 65536)
            assert chunk, "watch ended early"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def unread(self) -> str:
        """What was read from the pipe but not returned as a line yet."""
        return self.buffer.decode()


def test_watch_follows_a_running_run(gated_run: GatedRun, tmp_path: Path) -> None:
    run, db, execution_id, open_gate = gated_run
    watch = subprocess.Popen(
        cloacina_argv("executions", "watch", execution_id[:8], "--db", db, "--interval", "0.05"),
        cwd=tmp_path,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 45  # generous: the machine may be loaded
        reader = LineReader(watch.stdout)
        lines = [reader.line(deadline)]
        assert lines[0] == f"watching execution {execution_id} (workflow slow, 4 tasks): running"
        # Output comes line by line while the run goes on: wait until the held task shows.
        while "wait_for_gate running (attempt 1)" not in lines[-1]:
            lines.append(reader.line(deadline))
        open_gate()
        out, err = watch.communicate(timeout=20)
        out = reader.unread() + out
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    lines += out.splitlines()
    assert watch.returncode == 0, "\n".join([*lines, err])
    assert run.wait(timeout=20) == 0

    events = lines[1:-1]
    assert all(STAMP.match(line) for line in events), events
    assert len(events) == len(set(events)), "a state change was printed twice"
    text = [STAMP.sub("", line) for line in events]
    assert "wait_for_gate completed" in " ".join(text)
    for step in STEPS:
        running = text.index(f"{step} running (attempt 1)")
        completed = next(i for i, t in enumerate(text) if t.startswith(f"{step} completed in "))
        assert running < completed, text
    assert text.index("step_1 running (attempt 1)") < text.index("step_2 running (attempt 1)")
    assert len(events) <= 12, "watch without a terminal must not repeat itself"
    assert re.fullmatch(rf"execution {execution_id} completed in \S+: 4 completed", lines[-1])


def test_watch_on_a_terminal_shows_a_live_table(gated_run: GatedRun, tmp_path: Path) -> None:
    run, db, execution_id, open_gate = gated_run
    master, slave = pty.openpty()
    watch = subprocess.Popen(
        cloacina_argv("executions", "watch", execution_id, "--db", db, "--interval", "0.05"),
        cwd=tmp_path,
        env=cli_env(COLUMNS="120", TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    gate_open = False
    deadline = time.monotonic() + 25
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the watcher ended and closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            if not gate_open and b"wait_for_gate" in b"".join(chunks):
                open_gate()  # the live view is up: let the run go on
                gate_open = True
        watch.wait(timeout=10)
    finally:
        os.close(master)
        if watch.poll() is None:
            watch.kill()
        watch.communicate()
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert watch.returncode == 0, screen
    assert run.wait(timeout=20) == 0
    assert "\x1b[1A" in screen or "\x1b[2K" in screen, "no live redraw"
    plain = ANSI.sub("", screen).replace("\r", "")
    final = plain[plain.rfind("slow  " + execution_id) :]  # the last frame, printed once more
    assert "✓ completed" in final
    assert "4/4 settled" in final
    for task_id in ("wait_for_gate", *STEPS):
        row = next(line for line in final.splitlines() if line.startswith(task_id))
        assert "✓ completed" in row, row
    assert "▶ running" in plain  # a task was seen running on the way
