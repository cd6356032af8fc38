"""Packaged workflows through the runner (DESIGN.md §2 "Load"/"Execute", §4 "Versions"):
register, list, execute in the package's own processes, several runners on one database,
and versions side by side.

Packages are built from source strings by the ``make_package`` fixture (conftest.py), without
the builder; every test runs on its own SQLite file with real worker processes.
"""

from __future__ import annotations

import hashlib
import os
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import DefaultRunner, InvalidStateError, Workflow
from cloacina.errors import PackageError, PackageNotFoundError
from cloacina.packaging.archive import read_archive

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

HEADER = "import os\nimport time\n\nfrom cloacina import Context, packaged_workflow, task\n"


def sources(package: str, body: str) -> dict[str, str]:
    """``lib/`` sources of a package whose workflows live in ``<package>/flows.py``."""
    return {f"{package}/__init__.py": "", f"{package}/flows.py": HEADER + textwrap.dedent(body)}


def workflow_version(data: bytes, name: str) -> str:
    """The version (code hash) the package's manifest gives workflow ``name``."""
    spec = read_archive(data).manifest.workflow(name)
    assert spec is not None
    return spec.version


LIFE_FLOW = """
@packaged_workflow(name="life_flow", package="life_pkg", description="lifecycle demo")
class life_flow:
    @task(id="extract")
    def extract(context: Context) -> None:
        context.insert("doubled", context["n"] * 2)
        context.insert("extract_pid", os.getpid())

    @task(id="load", dependencies=["extract"])
    async def load(context: Context) -> None:
        context.insert("total", context["doubled"] + 1)
        context.insert("load_pid", os.getpid())
"""


def test_register_list_execute_in_package_processes(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    data = make_package(
        tmp_path, "life_pkg", "1.0.0", sources("life_pkg", LIFE_FLOW), ["life_pkg.flows"]
    )

    package_id = runner.register_workflow(data)
    assert runner.register_workflow(data) == package_id  # identical bytes: same id
    # any bytes-like value is taken, though the signature says bytes
    assert runner.register_workflow(bytearray(data)) == package_id  # type: ignore[arg-type]

    [info] = runner.list_packages()
    assert (info.id, info.package, info.version) == (package_id, "life_pkg", "1.0.0")
    assert info.workflows == ("life_flow",)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.signer is None

    listed = {wf.name: wf for wf in runner.list_workflows()}
    assert "life_flow" in listed
    wf = listed["life_flow"]
    assert wf.package == "life_pkg"
    assert wf.version == workflow_version(data, "life_flow")
    assert list(wf.tasks) == ["extract", "load"]

    first = runner.execute("life_flow", {"n": 4}, timeout=30)
    assert first.status == "completed", first.error
    assert first.workflow_version == wf.version
    assert first.package == "life_pkg"
    assert {tid: str(t.status) for tid, t in first.tasks.items()} == {
        "extract": "completed",
        "load": "completed",
    }
    ctx = first.final_context
    assert (ctx["n"], ctx["doubled"], ctx["total"]) == (4, 8, 9)
    worker_pid = ctx["extract_pid"]
    assert worker_pid != os.getpid(), "a packaged task ran in the runner's own process"
    assert ctx["load_pid"] == worker_pid  # the chain reused the package's one process

    second = runner.execute("life_flow", {"n": 10}, timeout=30)
    assert second.status == "completed", second.error
    assert second.final_context["total"] == 21
    assert second.final_context["extract_pid"] == worker_pid  # the process is reused
    assert second.final_context["load_pid"] == worker_pid


SHARED_FLOW = """
@packaged_workflow(name="shared_db_flow", package="shared_db_pkg")
class shared_db_flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        context.insert("greeting", "hello " + context.get("who", "nobody"))
        context.insert("pid", os.getpid())
"""


def test_runners_on_one_database_share_registered_packages(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    until: Callable[..., None],
) -> None:
    # Started before the package exists; must pick it up without a restart.
    early = make_package_runner()
    assert all(wf.name != "shared_db_flow" for wf in early.list_workflows())
    # Registers only (like `cloacina package register`): runs nothing itself.
    registrar = make_package_runner(execute_tasks=False)
    data = make_package(
        tmp_path,
        "shared_db_pkg",
        "0.1",
        sources("shared_db_pkg", SHARED_FLOW),
        ["shared_db_pkg.flows"],
    )
    package_id = registrar.register_workflow(data)

    # `early` picks the package up by itself (its poll), without a restart. (Asking for it by
    # name at once races with that poll: see test_execute_by_name_while_the_runner_syncs.)
    until(
        lambda: "shared_db_flow" in {wf.name for wf in early.list_workflows()},
        timeout=10,
        what="the early runner to pick up the package",
    )
    # `early` is the only runner executing tasks: the run proves it loaded the package.
    result = early.execute("shared_db_flow", {"who": "early"}, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context["greeting"] == "hello early"
    assert result.final_context["pid"] != os.getpid()
    assert [p.id for p in early.list_packages()] == [package_id]
    assert "shared_db_flow" in {wf.name for wf in early.list_workflows()}

    # A runner created afterwards sees it without registering anything.
    early.shutdown()
    late = make_package_runner()
    assert [(p.id, p.package, p.version) for p in late.list_packages()] == [
        (package_id, "shared_db_pkg", "0.1")
    ]
    assert "shared_db_flow" in {wf.name for wf in late.list_workflows()}
    again = late.execute("shared_db_flow", {"who": "late"}, timeout=30)
    assert again.status == "completed", again.error
    assert again.final_context["greeting"] == "hello late"
    assert late.register_workflow(data) == package_id  # already there: same id, no copy
    assert len(late.list_packages()) == 1


RACE_FLOW = """
@packaged_workflow(name="race_flow", package="race_pkg")
class race_flow:
    @task(id="only")
    def only(context: Context) -> None:
        context.insert("ran", True)
"""


def test_execute_by_name_while_the_runner_syncs(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process registered a package; this runner's poll is loading it right now
    when the application asks for the workflow by name: it must be found."""
    runner = make_package_runner(execute_tasks=False)  # no engine: the test plays its poll
    registrar = make_package_runner(execute_tasks=False)
    registrar.register_workflow(
        make_package(
            tmp_path, "race_pkg", "1.0", sources("race_pkg", RACE_FLOW), ["race_pkg.flows"]
        )
    )
    loading = threading.Event()
    add = runner.packages.add

    def slow_add(wf: Workflow, *, default: bool = True) -> None:
        loading.set()
        time.sleep(0.3)  # the poll's sync is busy loading when the application asks
        add(wf, default=default)

    monkeypatch.setattr(runner.packages, "add", slow_add)
    poll = threading.Thread(target=runner.registry.sync)  # what Engine._poll_tick does
    poll.start()
    try:
        assert loading.wait(5)
        execution_id = runner.schedule_workflow("race_flow")
    finally:
        poll.join()
    assert runner.get_execution(execution_id).workflow_name == "race_flow"


VERSIONED_FLOW = """
@packaged_workflow(name="ver_flow", package="ver_pkg")
class ver_flow:
    @task(id="work")
    def work(context: Context) -> None:
        gate = context.get("gate")
        deadline = time.monotonic() + 20
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        context.insert("version", "LABEL")
        context.insert("pid", os.getpid())
"""


def test_versions_run_side_by_side_and_unregister(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    until: Callable[..., None],
) -> None:
    runner = make_package_runner()

    def build(version: str, label: str) -> bytes:
        body = VERSIONED_FLOW.replace("LABEL", label)
        return make_package(
            tmp_path, "ver_pkg", version, sources("ver_pkg", body), ["ver_pkg.flows"]
        )

    v1, v2 = build("1.0", "v1"), build("2.0", "v2")
    v1_version, v2_version = workflow_version(v1, "ver_flow"), workflow_version(v2, "ver_flow")
    assert v1_version != v2_version

    runner.register_workflow(v1)
    gate = tmp_path / "gate"
    old_run = runner.schedule_workflow("ver_flow", {"gate": str(gate)})
    until(
        lambda: runner.get_execution(old_run).tasks["work"].status == "running",
        timeout=20,
        what="the v1 task to start",
    )

    # Zero-downtime upgrade while the v1 run is in flight.
    runner.register_workflow(v2)
    assert [(p.package, p.version) for p in runner.list_packages()] == [
        ("ver_pkg", "1.0"),
        ("ver_pkg", "2.0"),
    ]
    assert {wf.name: wf.version for wf in runner.list_workflows()}["ver_flow"] == v2_version
    new_run = runner.schedule_workflow("ver_flow")
    new = runner.wait(new_run, timeout=30)  # finishes while v1 is still blocked
    assert new.status == "completed", new.error
    assert (new.final_context["version"], new.workflow_version) == ("v2", v2_version)
    assert runner.get_execution(old_run).status == "running"

    with pytest.raises(InvalidStateError, match="unfinished"):
        runner.unregister_workflow("ver_pkg", "1.0")
    assert len(runner.list_packages()) == 2

    gate.touch()
    old = runner.wait(old_run, timeout=30)
    assert old.status == "completed", old.error
    assert (old.final_context["version"], old.workflow_version) == ("v1", v1_version)
    pids = {old.final_context["pid"], new.final_context["pid"]}
    assert len(pids) == 2, "both versions must run in processes of their own"
    assert os.getpid() not in pids

    runner.unregister_workflow("ver_pkg", "1.0")
    assert [(p.package, p.version) for p in runner.list_packages()] == [("ver_pkg", "2.0")]
    latest = runner.execute("ver_flow", timeout=30)
    assert (latest.status, latest.final_context["version"]) == ("completed", "v2")
    assert runner.get_execution(old_run).final_context["version"] == "v1"  # history stays

    with pytest.raises(PackageNotFoundError):
        runner.unregister_workflow("ver_pkg", "1.0")  # already gone
    with pytest.raises(PackageNotFoundError):
        runner.unregister_workflow("no_such_pkg", "1.0")

    # Same name and version, other contents: refused, nothing replaced.
    impostor = build("2.0", "v2-impostor")
    with pytest.raises(PackageError, match="already registered with other contents"):
        runner.register_workflow(impostor)
    [info] = runner.list_packages()
    assert info.sha256 == hashlib.sha256(v2).hexdigest()
