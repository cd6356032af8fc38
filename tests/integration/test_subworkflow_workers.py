"""Sub-workflows across worker processes (``worker_proc.py``), on SQLite and PostgreSQL: a
worker SIGKILLed while a child run's task runs loses nothing: the next worker recovers the
child's task, the child ends, and its parent task settles with it (one child, no second one
started for the same attempt)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloacina import DefaultRunner

from .test_map_workers import Workers

pytestmark = pytest.mark.timeout(120)

MODULE = """
import os
import time
from pathlib import Path

from cloacina import Context, subworkflow, task, workflow

LOG = Path(os.environ["MAP_TEST_DIR"]) / "ran.log"


@workflow(name="NAME_child")
class child:
    @task
    def slow(context: Context) -> None:
        with open(LOG, "a") as log:
            log.write(f"slow {os.getpid()}\\n")
        time.sleep(1.0)
        context.insert("slowed", context["x"] + 1)


@workflow(name="NAME_parent")
class parent:
    @task
    def prepare(context: Context) -> None:
        context.insert("x", 41)

    etl = subworkflow(id="etl", workflow="NAME_child", dependencies=[prepare])

    @task(dependencies=[etl])
    def after(context: Context) -> None:
        context.insert("after", context["slowed"] * 2)
"""


@pytest.fixture
def setup(
    db_url: str, tmp_path: Path, name: Callable[[str], str]
) -> Iterator[tuple[Workers, DefaultRunner, str]]:
    flow = name("subw")
    module = f"subflows_{flow[-10:]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(MODULE).replace("NAME", flow))
    (tmp_path / "slots").mkdir()
    workers = Workers(db_url, tmp_path, module)
    sys.path.insert(0, str(tmp_path))
    os.environ["MAP_TEST_DIR"] = str(tmp_path / "slots")
    try:
        __import__(module)  # the client knows the workflows too (to submit by name)
        client = DefaultRunner(db_url, execute_tasks=False, poll_interval=0.05)
        try:
            yield workers, client, flow
        finally:
            client.shutdown()
            workers.stop_all()
    finally:
        sys.path.remove(str(tmp_path))
        os.environ.pop("MAP_TEST_DIR", None)


def test_a_worker_killed_mid_child_loses_nothing(
    setup: tuple[Workers, DefaultRunner, str], tmp_path: Path
) -> None:
    workers, client, flow = setup
    first = workers.start(max_concurrent_tasks=2)
    eid = client.schedule_workflow(f"{flow}_parent")
    log = tmp_path / "slots" / "ran.log"
    deadline = time.monotonic() + 60
    while not log.exists() or not log.read_text():
        assert time.monotonic() < deadline, "the child's task did not start"
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    workers.start(max_concurrent_tasks=2)
    result = client.wait(eid, timeout=90)
    assert result.status == "completed", result.error
    assert result.final_context == {"x": 41, "slowed": 42, "after": 84}
    assert len(result.children) == 1  # the task's attempt kept its one child
    assert result.tasks["etl"].attempts == 1
    child = client.get_execution(result.children[0])
    assert child.status == "completed"
    assert child.tasks["slow"].recoveries == 1  # taken back from the killed worker
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) == 2
