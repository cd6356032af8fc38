"""Shared fixtures for the integration tests: real SQLite files in ``tmp_path``.

Every test defines its own workflows (inside the test function) with a name made unique by
the ``name`` fixture, because the workflow catalog is process-global.

Helpers are handed out as fixtures rather than imported (``from conftest import ...`` is
fragile once other test directories have a ``conftest.py`` of their own).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner, RetryPolicy

#: Settings that make every timer short, so recovery and polling happen in well under a second.
FAST: dict[str, Any] = {
    "poll_interval": 0.05,
    "heartbeat_interval": 0.1,
    "stale_claim_threshold": 0.5,
    "shutdown_grace": 5.0,
    "busy_timeout": 10.0,
}

#: A retry policy with 3 attempts and (almost) no delay between them.
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)


def unique_name(prefix: str) -> str:
    """A workflow name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def db_url_for(path: Path) -> str:
    return f"sqlite:///{path}"


RunnerFactory = Callable[..., DefaultRunner]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite file for this test."""
    return db_url_for(tmp_path / "t.db")


@pytest.fixture
def make_runner(db_url: str) -> Iterator[RunnerFactory]:
    """Build runners with the fast settings (overridable); all are shut down at the end."""
    runners: list[DefaultRunner] = []

    def make(url: str | None = None, **overrides: Any) -> DefaultRunner:
        settings = {**FAST, **overrides}
        runner = DefaultRunner(url or db_url, **settings)
        runners.append(runner)
        return runner

    yield make
    for runner in reversed(runners):
        runner.shutdown(wait=False)


@pytest.fixture
def runner(make_runner: RunnerFactory) -> DefaultRunner:
    """One runner with the fast settings on this test's database."""
    return make_runner()


def event_names(runner: DefaultRunner, execution_id: str, task_id: str | None = None) -> list[str]:
    """The names of the stored events of a run (of one task when ``task_id`` is given)."""
    return [
        e.event
        for e in runner.store.get_events(execution_id)
        if task_id is None or e.task_id == task_id
    ]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


class Recorder:
    """Thread-safe record of task calls: who ran, how often, and how many ran at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, int]] = []  # (task id, attempt)
        self.counts: Counter[Any] = Counter()
        self.active = 0
        self.peak = 0

    def hit(self, key: Any, attempt: int = 0) -> None:
        with self._lock:
            self.counts[key] += 1
            self.calls.append((str(key), attempt))

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def count(self, key: Any) -> int:
        with self._lock:
            return self.counts[key]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def name() -> Callable[[str], str]:
    """``name("prefix")``: a workflow name no other test uses."""
    return unique_name


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST_RETRY


@pytest.fixture
def events() -> Callable[..., list[str]]:
    """``events(runner, execution_id, task_id=None)``: stored event names of a run."""
    return event_names


@pytest.fixture
def until() -> Callable[..., None]:
    """``until(predicate, timeout=10, what="")``: poll until true or fail the test."""
    return wait_until
