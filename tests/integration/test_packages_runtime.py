"""Packaged tasks at run time (DESIGN.md §4-§6): isolation between packages, worker processes
that die or time out, packages whose code or manifest is broken, command tasks, trigger-rule
conditions and retries evaluated in the package's process.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner, TaskStatus
from cloacina.errors import PackageError
from cloacina.packaging.manifest import Manifest, TaskSpec

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

HEADER = textwrap.dedent(
    """\
    import os
    import signal
    import time
    from pathlib import Path

    from cloacina import Context, RetryPolicy, TaskError, current_task, packaged_workflow, task
    from cloacina.rules import context_value
    """
)


def sources(package: str, body: str) -> dict[str, str]:
    """``lib/`` sources of a package whose workflows live in ``<package>/flows.py``."""
    return {f"{package}/__init__.py": "", f"{package}/flows.py": HEADER + textwrap.dedent(body)}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def statuses(result: Any) -> dict[str, str]:
    return {tid: str(t.status) for tid, t in result.tasks.items()}


# ---- isolation ---------------------------------------------------------------------------------
ISOLATED_FLOW = """
import shared_dep

@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="probe")
    def probe(context: Context) -> None:
        shared_dep.CALLS.append(context["who"])
        context.insert("dep_version", shared_dep.VERSION)
        context.insert("dep_calls", list(shared_dep.CALLS))
        context.insert("pid", os.getpid())
"""


def _isolated_package(
    tmp_path: Path, make_package: PackageFactory, package: str, dep_version: str
) -> bytes:
    src = sources(package, ISOLATED_FLOW.replace("NAME", f"{package}_flow").replace("PKG", package))
    src["shared_dep/__init__.py"] = f'VERSION = "{dep_version}"\nCALLS: list[str] = []\n'
    return make_package(tmp_path, package, "1.0", src, [f"{package}.flows"])


def test_packages_get_their_own_copy_of_a_same_named_module(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    runner.register_workflow(_isolated_package(tmp_path, make_package, "iso_a", "1"))
    runner.register_workflow(_isolated_package(tmp_path, make_package, "iso_b", "2"))

    runs = {
        "iso_a": runner.schedule_workflow("iso_a_flow", {"who": "a"}),
        "iso_b": runner.schedule_workflow("iso_b_flow", {"who": "b"}),
    }
    results = {pkg: runner.wait(eid, timeout=30) for pkg, eid in runs.items()}
    for result in results.values():
        assert result.status == "completed", result.error
    a, b = results["iso_a"].final_context, results["iso_b"].final_context
    assert (a["dep_version"], b["dep_version"]) == ("1", "2")
    assert (a["dep_calls"], b["dep_calls"]) == (["a"], ["b"])  # no shared module state
    assert a["pid"] != b["pid"]
    assert os.getpid() not in (a["pid"], b["pid"])

    # The second run of a package sees its own earlier state (same process), nothing else.
    again = runner.execute("iso_a_flow", {"who": "a2"}, timeout=30)
    assert again.final_context["dep_calls"] == ["a", "a2"]

    # Nothing of any package leaks into the runner's process.
    assert "shared_dep" not in sys.modules
    assert importlib.util.find_spec("shared_dep") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("shared_dep")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("iso_a.flows")


# ---- failures ----------------------------------------------------------------------------------
KILL_FLOWS = """
@packaged_workflow(name="kill_flow", package="kill_pkg")
class kill_flow:
    @task(id="fragile", retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False))
    def fragile(context: Context) -> None:
        info = current_task()
        if info.attempt == 1:
            Path(context["pid_file"]).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        context.insert("pid", os.getpid())
        context.insert("attempt", info.attempt)


@packaged_workflow(name="kill_always_flow", package="kill_pkg")
class kill_always_flow:
    @task(id="doomed")
    def doomed(context: Context) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @task(id="after", dependencies=["doomed"])
    def after(context: Context) -> None:
        context.insert("after", True)
"""


def test_killed_worker_process_fails_the_task_and_the_retry_runs_in_a_new_one(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    until: Callable[..., None],
) -> None:
    runner = make_package_runner()
    runner.register_workflow(
        make_package(
            tmp_path, "kill_pkg", "1.0", sources("kill_pkg", KILL_FLOWS), ["kill_pkg.flows"]
        )
    )
    pid_file = tmp_path / "killed.pid"

    result = runner.execute("kill_flow", {"pid_file": str(pid_file)}, timeout=30)
    assert result.status == "completed", result.error
    fragile = result.tasks["fragile"]
    assert (fragile.status, fragile.attempts) == (TaskStatus.COMPLETED, 2)
    killed = int(pid_file.read_text())
    assert result.final_context["attempt"] == 2
    assert result.final_context["pid"] not in (killed, os.getpid())
    until(lambda: not pid_alive(killed), timeout=5, what=f"killed worker {killed} to be gone")
    [retry] = [
        e for e in runner.store.get_events(result.execution_id) if e.event == "task_retry_scheduled"
    ]
    first_error = json.loads(retry.detail or "{}")["error"]
    assert "died" in first_error and "kill_pkg" in first_error

    # Without retries the task fails for good, its dependents are skipped, the runner lives on.
    doomed = runner.execute("kill_always_flow", timeout=30)
    assert doomed.status == "failed"
    assert statuses(doomed) == {"doomed": "failed", "after": "skipped"}
    error = doomed.tasks["doomed"].error or ""
    assert "died while running it" in error, error
    assert "exit code -9" in error, error
    assert runner.execute("kill_flow", {"pid_file": str(tmp_path / "again.pid")}).status == (
        "completed"
    )


TIMEOUT_FLOW = """
@packaged_workflow(name="stuck_flow", package="stuck_pkg")
class stuck_flow:
    @task(id="stuck", timeout=0.5)
    def stuck(context: Context) -> None:
        Path(context["pid_file"]).write_text(str(os.getpid()))
        time.sleep(60)
        context.insert("woke", True)

    @task(id="quick")
    def quick(context: Context) -> None:
        context.insert("quick_pid", os.getpid())
"""


def test_sync_task_past_its_timeout_gets_its_process_killed(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    until: Callable[..., None],
) -> None:
    runner = make_package_runner()
    runner.register_workflow(
        make_package(
            tmp_path, "stuck_pkg", "1.0", sources("stuck_pkg", TIMEOUT_FLOW), ["stuck_pkg.flows"]
        )
    )
    pid_file = tmp_path / "stuck.pid"

    started = time.monotonic()
    result = runner.execute("stuck_flow", {"pid_file": str(pid_file)}, timeout=30)
    elapsed = time.monotonic() - started

    assert result.status == "failed"
    assert statuses(result) == {"stuck": "failed", "quick": "completed"}
    stuck = result.tasks["stuck"]
    assert stuck.attempts == 1
    assert "timed out" in (stuck.error or ""), stuck.error
    assert elapsed < 10, f"the run took {elapsed:.1f}s: the timeout did not stop the task"
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    until(lambda: not pid_alive(pid), timeout=5, what=f"timed-out worker {pid} to be killed")
    assert "woke" not in result.final_context


GOOD_FLOW = """
@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="a")
    def a(context: Context) -> None:
        context.insert("a", 1)

    @task(id="b", dependencies=["a"])
    def b(context: Context) -> None:
        context.insert("b", context["a"] + 1)
"""


def good_sources(package: str) -> dict[str, str]:
    return sources(package, GOOD_FLOW.replace("NAME", f"{package}_flow").replace("PKG", package))


def test_package_whose_code_raises_on_import_is_refused(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    good = good_sources("broken_pkg")
    broken = "raise RuntimeError('boom at import time')\n" + good["broken_pkg/flows.py"]
    data = make_package(
        tmp_path,
        "broken_pkg",
        "1.0",
        good,
        ["broken_pkg.flows"],
        shipped_sources={"broken_pkg/flows.py": broken},
    )

    with pytest.raises(PackageError) as caught:
        runner.register_workflow(data)
    message = str(caught.value)
    assert "Traceback" in message, message
    assert "RuntimeError: boom at import time" in message
    assert "broken_pkg/flows.py" in message  # the traceback names the package's file
    assert runner.list_packages() == []
    assert "broken_pkg_flow" not in {wf.name for wf in runner.list_workflows()}

    # The runner is unharmed: other packages register and run.
    runner.register_workflow(
        make_package(tmp_path, "fine_pkg", "1.0", good_sources("fine_pkg"), ["fine_pkg.flows"])
    )
    result = runner.execute("fine_pkg_flow", timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context == {"a": 1, "b": 2}


def _extra_task(manifest: Manifest) -> Manifest:
    [wf] = manifest.workflows
    ghost = TaskSpec(id="ghost", function="ghost", dependencies=("b",))
    return dataclasses.replace(
        manifest, workflows=(dataclasses.replace(wf, tasks=(*wf.tasks, ghost)),)
    )


def _other_version(manifest: Manifest) -> Manifest:
    [wf] = manifest.workflows
    return dataclasses.replace(manifest, workflows=(dataclasses.replace(wf, version="0" * 64),))


def _missing_workflow(manifest: Manifest) -> Manifest:
    return dataclasses.replace(manifest, workflows=())


@pytest.mark.parametrize(
    ("case", "edit", "changed_code", "needle"),
    [
        ("extra_task", _extra_task, False, "the manifest lists task(s)"),
        ("other_version", _other_version, False, "the manifest says version"),
        ("code_changed_after_build", None, True, "the manifest says version"),
    ],
)
def test_manifest_that_does_not_match_the_code_is_refused(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    case: str,
    edit: Callable[[Manifest], Manifest] | None,
    changed_code: bool,
    needle: str,
) -> None:
    runner = make_package_runner()
    package = f"mismatch_{case}"
    good = good_sources(package)
    shipped = None
    if changed_code:
        module = f"{package}/flows.py"
        shipped = {module: good[module].replace('context.insert("a", 1)', 'context.insert("a", 2)')}
    data = make_package(
        tmp_path,
        package,
        "1.0",
        good,
        [f"{package}.flows"],
        shipped_sources=shipped,
        edit_manifest=edit,
    )

    with pytest.raises(PackageError, match="does not match") as caught:
        runner.register_workflow(data)
    assert needle in str(caught.value)
    assert runner.list_packages() == []


def test_package_without_workflows_is_refused(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    data = make_package(
        tmp_path,
        "empty_pkg",
        "1.0",
        good_sources("empty_pkg"),
        ["empty_pkg.flows"],
        edit_manifest=_missing_workflow,
    )
    with pytest.raises(PackageError, match="no workflows"):
        runner.register_workflow(data)
    assert runner.list_packages() == []


# ---- command tasks -----------------------------------------------------------------------------
COMMAND_FLOW = """
from cloacina.packaging.command import command_task


@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="extract")
    def extract(context: Context) -> None:
        context.insert("value", 21)
        context.insert("nested", {"from_extract": True})

    enrich = command_task(id="enrich", command=["bin/enrich.sh"], dependencies=["extract"])

    @task(id="report", dependencies=["enrich"])
    def report(context: Context) -> None:
        context.insert("report", context["enriched"] + 1)
"""

ENRICH_OK = b"""#!/bin/sh
exec python3 -c '
import json, os, sys
ctx = json.load(sys.stdin)
print(json.dumps({
    "enriched": ctx["value"] * 2,
    "nested": {"from_command": True},
    "seen_task": os.environ["CLOACINA_TASK_ID"],
    "seen_attempt": os.environ["CLOACINA_ATTEMPT"],
}))
'
"""

ENRICH_FAILS = b"""#!/bin/sh
cat > /dev/null
echo "enrich: upstream service said no" >&2
exit 3
"""


def _command_package(
    tmp_path: Path, make_package: PackageFactory, package: str, script: bytes
) -> bytes:
    src = sources(package, COMMAND_FLOW.replace("NAME", f"{package}_flow").replace("PKG", package))
    return make_package(
        tmp_path, package, "1.0", src, [f"{package}.flows"], {"bin/enrich.sh": (script, True)}
    )


def test_command_task_updates_are_merged_into_the_context(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    runner.register_workflow(_command_package(tmp_path, make_package, "cmd_ok_pkg", ENRICH_OK))

    result = runner.execute("cmd_ok_pkg_flow", timeout=30)
    assert result.status == "completed", (result.error, result.tasks["enrich"].error)
    assert statuses(result) == {
        "extract": "completed",
        "enrich": "completed",
        "report": "completed",
    }
    ctx = result.final_context
    assert (ctx["value"], ctx["enriched"], ctx["report"]) == (21, 42, 43)
    assert ctx["nested"] == {"from_extract": True, "from_command": True}  # deep merge
    assert (ctx["seen_task"], ctx["seen_attempt"]) == ("enrich", "1")


def test_command_exiting_non_zero_fails_the_task_with_its_stderr(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    runner.register_workflow(_command_package(tmp_path, make_package, "cmd_bad_pkg", ENRICH_FAILS))

    result = runner.execute("cmd_bad_pkg_flow", timeout=30)
    assert result.status == "failed"
    assert statuses(result) == {"extract": "completed", "enrich": "failed", "report": "skipped"}
    error = result.tasks["enrich"].error or ""
    assert "exited with code 3" in error, error
    assert "enrich: upstream service said no" in error, error


# ---- trigger rules and retries -----------------------------------------------------------------
RULE_FLOW = """
@packaged_workflow(name="rule_flow", package="rule_pkg")
class rule_flow:
    @task(id="decide")
    def decide(context: Context) -> None:
        context.insert("mode", context.get("want", "fast"))

    @task(id="fast_path", dependencies=["decide"], trigger_rule=context_value("mode", "==", "fast"))
    def fast_path(context: Context) -> None:
        context.insert("fast_ran", True)

    @task(id="slow_path", dependencies=["decide"], trigger_rule=context_value("mode", "==", "slow"))
    def slow_path(context: Context) -> None:
        context.insert("slow_ran", True)

    @task(id="audit", dependencies=["slow_path"])
    def audit(context: Context) -> None:
        context.insert("audited", True)
"""


def test_trigger_rule_conditions_for_packaged_tasks(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    runner.register_workflow(
        make_package(
            tmp_path, "rule_pkg", "1.0", sources("rule_pkg", RULE_FLOW), ["rule_pkg.flows"]
        )
    )

    fast = runner.execute("rule_flow", {"want": "fast"}, timeout=30)
    assert fast.status == "completed", fast.error
    assert statuses(fast) == {
        "decide": "completed",
        "fast_path": "completed",
        "slow_path": "skipped",
        "audit": "skipped",
    }
    assert "mode" in (fast.tasks["slow_path"].skip_reason or "")
    assert fast.final_context.get("fast_ran") is True
    assert "slow_ran" not in fast.final_context

    slow = runner.execute("rule_flow", {"want": "slow"}, timeout=30)
    assert slow.status == "completed", slow.error
    assert statuses(slow) == {
        "decide": "completed",
        "fast_path": "skipped",
        "slow_path": "completed",
        "audit": "completed",
    }
    assert slow.final_context["audited"] is True


RETRY_FLOWS = """
@packaged_workflow(name="retry_flow", package="retry_pkg")
class retry_flow:
    @task(
        id="flaky",
        retry=RetryPolicy(max_attempts=3, backoff="fixed", initial_delay=0.01, jitter=False),
    )
    def flaky(context: Context) -> None:
        attempt = current_task().attempt
        if attempt < 3:
            raise ValueError(f"flaky on attempt {attempt}")
        context.insert("succeeded_on", attempt)


@packaged_workflow(name="no_retry_flow", package="retry_pkg")
class no_retry_flow:
    @task(id="fatal", retry=RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False))
    def fatal(context: Context) -> None:
        raise TaskError("bad configuration", retryable=False)

    @task(
        id="wrong_kind",
        retry=RetryPolicy(
            max_attempts=3, initial_delay=0.01, jitter=False, retry_on=(ConnectionError,)
        ),
    )
    def wrong_kind(context: Context) -> None:
        raise ValueError("not a connection problem")
"""


def test_retries_for_packaged_tasks(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    events: Callable[..., list[str]],
) -> None:
    runner = make_package_runner()
    runner.register_workflow(
        make_package(
            tmp_path, "retry_pkg", "1.0", sources("retry_pkg", RETRY_FLOWS), ["retry_pkg.flows"]
        )
    )

    result = runner.execute("retry_flow", timeout=30)
    assert result.status == "completed", result.error
    assert result.tasks["flaky"].attempts == 3
    assert result.final_context["succeeded_on"] == 3
    assert events(runner, result.execution_id, "flaky").count("task_retry_scheduled") == 2

    failed = runner.execute("no_retry_flow", timeout=30)
    assert failed.status == "failed"
    fatal, wrong_kind = failed.tasks["fatal"], failed.tasks["wrong_kind"]
    assert (fatal.status, fatal.attempts) == (TaskStatus.FAILED, 1)
    assert "bad configuration" in (fatal.error or "")
    # retry_on is applied in the package's process, where the exception's class lives.
    assert (wrong_kind.status, wrong_kind.attempts) == (TaskStatus.FAILED, 1)
    assert "not a connection problem" in (wrong_kind.error or "")
    assert "task_retry_scheduled" not in events(runner, failed.execution_id)
