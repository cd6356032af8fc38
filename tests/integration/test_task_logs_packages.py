"""Task logs of packaged tasks (captured in the package's worker process and sent back with
the reply, or while the body runs) and of command tasks (their stderr), on SQLite and
PostgreSQL."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import DefaultRunner

pytestmark = pytest.mark.timeout(90)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

FLOW = textwrap.dedent(
    """\
    import logging
    import sys
    import time

    from cloacina import Context, packaged_workflow, task
    from cloacina.packaging.command import command_task


    @packaged_workflow(name="NAME", package="PKG")
    class flow:
        @task(id="talk")
        def talk(context: Context) -> None:
            print("hello from the package")
            print("to stderr", file=sys.stderr)
            logging.getLogger("pkg.talk").warning("a record, %s", "formatted")
            print("x" * 500)  # past the bound of the test's runner

        @task(id="slow", dependencies=["talk"])
        def slow(context: Context) -> None:
            print("slow begins", flush=True)
            # Long enough for the process to send this line, and the engine to store it,
            # while the body still runs.
            time.sleep(float(context.get("pause", 0.0)))
            print("slow ends")

        @task(id="quiet", dependencies=["talk"])
        async def quiet(context: Context) -> None:
            print("async in a package")

        enrich = command_task(id="enrich", command=["bin/enrich.sh"], dependencies=["slow"])
    """
)

ENRICH = b"""#!/bin/sh
cat > /dev/null
echo "enrich: warming up" >&2
echo "enrich: d\xc3\xa9j\xc3\xa0 vu" >&2
echo '{"enriched": true}'
"""


def _package(tmp_path: Path, make_package: PackageFactory, package: str) -> bytes:
    src = {
        f"{package}/__init__.py": "",
        f"{package}/flows.py": FLOW.replace("NAME", f"{package}_flow").replace("PKG", package),
    }
    return make_package(
        tmp_path, package, "1.0", src, [f"{package}.flows"], {"bin/enrich.sh": (ENRICH, True)}
    )


def test_packaged_and_command_tasks_output_is_stored(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    name: Callable[[str], str],
) -> None:
    package = name("logpkg")
    runner = make_package_runner(max_log_bytes=200)
    runner.register_workflow(_package(tmp_path, make_package, package))

    result = runner.execute(f"{package}_flow", timeout=60)
    assert result.status == "completed", (result.error, result.tasks)
    eid = result.execution_id

    talk = runner.get_task_logs(eid, "talk")
    assert talk.startswith("hello from the package\nto stderr\n"), talk
    assert "WARNING pkg.talk: a record, formatted\n" in talk
    # Bounded in the package's process; the marker, on a line of its own, counts every
    # byte that was dropped.
    kept, marker = talk.split("\n[cloacina: ")
    assert len(kept.encode()) == 200
    record = next(line for line in talk.splitlines() if "pkg.talk" in line)
    printed = len("hello from the package\nto stderr\n") + len(record) + 1 + 501
    assert marker.startswith(f"{printed - 200} more bytes of output were dropped")
    assert marker.endswith("(setting max_log_bytes, env CLOACINA_MAX_LOG_BYTES)]\n")

    assert runner.get_task_logs(eid, "slow") == "slow begins\nslow ends\n"
    assert runner.get_task_logs(eid, "quiet") == "async in a package\n"
    enrich = runner.get_task_logs(eid, "enrich")
    assert enrich == "enrich: warming up\nenrich: déjà vu\n"  # stderr, not the JSON result
    streams = {c.stream for c in runner.follow_execution_logs(eid) if c.task_id == "enrich"}
    assert streams == {"stderr"}


def test_a_packaged_body_is_followed_while_it_runs(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    name: Callable[[str], str],
) -> None:
    package = name("logfollow")
    runner = make_package_runner()
    runner.register_workflow(_package(tmp_path, make_package, package))
    eid = runner.schedule_workflow(f"{package}_flow", {"pause": 6.0})

    pieces = runner.follow_task_logs(eid, "slow")  # waits for the task to start
    first = next(pieces)
    assert first == "slow begins\n"
    # The body still sleeps: what came so far came while it ran.
    assert runner.get_execution(eid).tasks["slow"].status == "running"
    assert "".join(pieces) == "slow ends\n"
    assert runner.wait(eid, timeout=60).status == "completed"
