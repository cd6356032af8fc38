"""``cloacina executions watch`` prints a run's history as a log does: one line per event, in
the order things happened, tasks interleaved, whether the run is finished or still going
(issue 9.24)."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from .helpers import Result, run_cli
from .test_watch_graph_e2e import LineReader, cli_env, cloacina_argv

pytestmark = pytest.mark.timeout(180)

#: ``root``, then three tasks side by side that end in the opposite order to the one they
#: are declared in (``slow`` waits for the file ``go``), then ``join``.
PARALLEL = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow

    GATE = Path(__file__).with_name("go")


    @workflow(name="fanout")
    class fanout:
        @task()
        def root(context: Context) -> None:
            pass

        @task(dependencies=["root"])
        def slow(context: Context) -> None:
            deadline = time.monotonic() + 60
            while not GATE.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never opened the gate")
                time.sleep(0.02)

        @task(dependencies=["root"])
        def medium(context: Context) -> None:
            # Long beside quick's, so that quick ends first even on a loaded machine (CI on
            # 2 cores with a browser running has delayed a thread by over 0.35 s).
            time.sleep(1.5)

        @task(dependencies=["root"])
        def quick(context: Context) -> None:
            time.sleep(0.05)

        @task(dependencies=["slow", "medium", "quick"])
        def join(context: Context) -> None:
            pass
    """
)
LINE = re.compile(r"^\[\+(\d+\.\d\d)s\] (\w+) (running|completed)\b")
WORDS = {"task_started": "running", "task_completed": "completed"}


def _show(cwd: Path, db: str, eid: str) -> dict[str, object]:
    res = run_cli("executions", "show", eid, "--db", db, "--events", "--json", cwd=cwd)
    assert res.returncode == 0, res
    data = json.loads(res.stdout)
    assert isinstance(data, dict)
    return data


def _task_events(data: dict[str, object]) -> list[tuple[str, str]]:
    """(task, running|completed) for the run's task events, in event-id order."""
    events = data["events"]
    assert isinstance(events, list)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    return [(e["task"], WORDS[e["event"]]) for e in events if e["event"] in WORDS]


def _printed(lines: list[str]) -> list[tuple[str, str]]:
    """(task, running|completed) for the task lines watch printed, in printed order; their
    times never go back."""
    found = [m for m in map(LINE.match, lines) if m]
    stamps = [float(m.group(1)) for m in found]
    assert stamps == sorted(stamps), lines
    return [(m.group(2), m.group(3)) for m in found]


def test_watch_replays_and_follows_a_run_in_event_order(tmp_path: Path) -> None:
    (tmp_path / "parflows.py").write_text(PARALLEL, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = subprocess.Popen(
        cloacina_argv("run", "fanout", "-m", "parflows", "--db", db, "--json"),
        cwd=tmp_path,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch: subprocess.Popen[str] | None = None
    try:
        # Wait until quick and medium are done while slow still runs: watch then starts on
        # a run with history, in which the order of the tasks' ends is not their order.
        deadline = time.monotonic() + 60  # generous: the machine may be loaded
        eid = ""
        while True:
            assert time.monotonic() < deadline, "the run never got to its slow task"
            assert run.poll() is None, run.communicate()
            listed = run_cli("executions", "list", "--db", db, "--json", cwd=tmp_path)
            runs = json.loads(listed.stdout) if listed.returncode == 0 else []
            if runs:
                eid = runs[0]["execution_id"]
                seen = _task_events(_show(tmp_path, db, eid))
                if {("quick", "completed"), ("medium", "completed")} <= set(seen):
                    break
            time.sleep(0.1)
        assert ("slow", "completed") not in seen

        watch = subprocess.Popen(
            cloacina_argv("executions", "watch", eid, "--db", db, "--interval", "0.05"),
            cwd=tmp_path,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = LineReader(watch.stdout)
        lines = [reader.line(deadline)]
        assert lines[0] == f"watching execution {eid} (workflow fanout, 5 tasks): running"
        while "medium completed" not in lines[-1]:
            lines.append(reader.line(deadline))
        (tmp_path / "go").touch()  # the replay is out: let the run finish
        out, err = watch.communicate(timeout=60)
        lines += (reader.unread() + out).splitlines()
        assert watch.returncode == 0, "\n".join([*lines, err])
        assert run.wait(timeout=60) == 0, run.communicate()
    finally:
        (tmp_path / "go").touch()
        for proc in (watch, run):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()

    events = _task_events(_show(tmp_path, db, eid))
    assert len(events) == 10, events
    # Replayed (quick and medium ended before watch started) and followed, in event order.
    assert _printed(lines) == events, lines
    assert events.index(("quick", "completed")) < events.index(("medium", "completed"))
    assert events.index(("medium", "completed")) < events.index(("slow", "completed"))

    # The same run, finished: the whole replay in event order too.
    res: Result = run_cli("executions", "watch", eid, "--db", db, cwd=tmp_path, timeout=30)
    assert res.returncode == 0, res
    replay = res.stdout.splitlines()
    assert _printed(replay) == events, res
    assert replay[0] == f"watching execution {eid} (workflow fanout, 5 tasks): completed"
    assert re.fullmatch(rf"execution {eid} completed in \S+: 5 completed", replay[-1]), res
