"""Shared fixtures for the integration tests: real SQLite files in ``tmp_path`` and real
PostgreSQL databases. A test that takes ``db_url`` (or ``make_runner``/``runner``) runs on
both backends; ``sqlite_url`` pins a test to SQLite.

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
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite file for this test."""
    return db_url_for(tmp_path / "t.db")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database this test runs on."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database for this test: a SQLite file, or a PostgreSQL database of its own."""
    if backend == "sqlite":
        return db_url_for(tmp_path / "t.db")
    make: Callable[[], str] = request.getfixturevalue("postgres_database")
    return make()


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
def name() -> Iterator[Callable[[str], str]]:
    """``name("prefix")``: a workflow name no other test uses. The workflows given these
    names leave the process's catalog after the test: one declaring a schedule would
    otherwise be synced into every later test's database by its runner."""
    from cloacina.model.workflow import catalog

    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique_name(prefix))
        return made[-1]

    yield make
    for workflow_name in made:
        catalog.remove(workflow_name)


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


# ---- packaged workflows (tests/integration/test_packages_*.py) -------------------------------
#: Extra files of a package: archive path -> (content, executable bit).
ExtraFiles = dict[str, tuple[bytes, bool]]


def build_package(
    tmp_path: Path,
    package: str,
    version: str,
    sources: dict[str, str],
    modules: list[str],
    extra_files: ExtraFiles | None = None,
    *,
    shipped_sources: dict[str, str] | None = None,
    edit_manifest: Callable[[Any], Any] | None = None,
) -> bytes:
    """The bytes of a ``.cloacina`` package, made without the builder.

    ``sources`` (paths relative to ``lib/``) are written under a fresh directory, inspected in
    a clean process (``inspect_code``) to describe their workflows, and archived with a
    manifest of those workflows. ``shipped_sources`` replace sources in the archive *after*
    inspection and ``edit_manifest`` rewrites the manifest: both make packages whose manifest
    does not match their code (or code that no longer imports).
    """
    from cloacina.packaging.archive import write_archive
    from cloacina.packaging.manifest import Manifest
    from cloacina.packaging.verify import inspect_code

    root = tmp_path / f"build-{package}-{version}-{uuid.uuid4().hex[:6]}"
    for rel, text in sources.items():
        path = root / "lib" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    specs = [d.spec for d in inspect_code([root / "lib"], modules, cwd=root)]
    manifest = Manifest(
        package=package, version=version, workflows=tuple(specs), modules=tuple(modules)
    )
    if edit_manifest is not None:
        manifest = edit_manifest(manifest)
    shipped = {**sources, **(shipped_sources or {})}
    files = {"manifest.toml": manifest.to_toml().encode()}
    files.update({f"lib/{rel}": text.encode() for rel, text in shipped.items()})
    executable = set()
    for rel, (content, is_executable) in (extra_files or {}).items():
        files[rel] = content
        if is_executable:
            executable.add(rel)
    return write_archive(
        files, {"package": package, "version": version}, executable=frozenset(executable)
    )


@pytest.fixture
def make_package() -> Callable[..., bytes]:
    """``make_package(tmp_path, package, version, sources, modules, extra_files={})``: the
    bytes of a ``.cloacina`` package built from source strings (see :func:`build_package`)."""
    return build_package


@pytest.fixture
def make_package_runner(make_runner: RunnerFactory) -> RunnerFactory:
    """Like ``make_runner``, with the settings the package tests use (a 1 s stale-claim
    threshold: a package's process can take a moment to start)."""

    def make(url: str | None = None, **overrides: Any) -> DefaultRunner:
        return make_runner(url, **{"stale_claim_threshold": 1.0, **overrides})

    return make


InsertRun = Callable[..., str]


@pytest.fixture
def insert_run() -> InsertRun:
    """Insert a running execution of workflow ``wf`` (version ``v1``) straight into a store,
    without a runner: ``insert_run(store, tasks, input_json="{}")`` returns its id.
    ``tasks`` are ``(task id, index, number of dependencies, max attempts)``; a task with
    n dependencies depends on the first n tasks of the list."""
    from cloacina.store.records import NewTask

    def insert(store: Any, tasks: list[tuple[str, int, int, int]], input_json: str = "{}") -> str:
        execution_id = str(uuid.uuid4())
        ids = [t[0] for t in tasks]
        rows = [
            NewTask(tid, idx, tuple(ids[:deps]), attempts) for tid, idx, deps, attempts in tasks
        ]
        with store.write() as tx:
            tx.create_execution(
                execution_id,
                tenant="public",
                package="embedded",
                workflow_name="wf",
                workflow_version="v1",
                input_json=input_json,
                tasks=rows,
                now=time.time(),
            )
        return execution_id

    return insert
