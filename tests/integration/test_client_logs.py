"""Task logs through ``cloacina.Client`` (``GET .../tasks/{task}/logs``, plain and followed),
against a real server on SQLite and PostgreSQL: the same text as ``DefaultRunner``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cloacina import Context, task, workflow
from cloacina.errors import AttemptNotFoundError, TaskNotFoundError

from .client_support import Served, start_server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    """A server on this test's database (SQLite and PostgreSQL)."""
    yield from start_server(db_url)


def test_task_logs_through_the_client(served: Served, name: Callable[[str], str]) -> None:
    wf, gate = name("noisy"), threading.Event()

    @workflow(name=wf)
    class noisy:
        @task(id="talk")
        def talk(context: Context) -> None:
            print("first line from the task", flush=True)
            gate.wait(30)
            print("second line from the task", flush=True)

    client, local = served.client(), served.local
    try:
        execution_id = client.schedule_workflow(wf)
        deadline = time.monotonic() + 10
        while local.get_execution(execution_id).tasks["talk"].status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        followed = client.follow_task_logs(execution_id, "talk")
        first = next(followed)
        assert "first line from the task" in first
        gate.set()
        text = first + "".join(followed)  # ends when the attempt ends
        assert "second line from the task" in text
    finally:
        gate.set()
    client.wait(execution_id, timeout=30)
    logs = client.get_task_logs(execution_id, "talk")
    assert logs == local.get_task_logs(execution_id, "talk") == text
    assert client.get_task_logs(execution_id, "talk", attempt=1) == logs
    assert client.get_execution_logs(execution_id) == local.get_execution_logs(execution_id)
    with pytest.raises(TaskNotFoundError, match="nope"):
        client.get_task_logs(execution_id, "nope")
    with pytest.raises(AttemptNotFoundError):
        client.follow_task_logs(execution_id, "talk", attempt=7)
