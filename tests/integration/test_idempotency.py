"""Idempotency keys (DESIGN §11): one run per key and tenant, whatever the concurrency (8
threads; two processes on PostgreSQL); the same key with another body is a conflict; a key
over 255 characters is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import IdempotencyConflictError, RequestError
from cloacina.model.workflow import workflow_of

pytestmark = pytest.mark.timeout(120)


def _noop(name: Callable[[str], str], label: str = "keyed") -> str:
    @workflow(name=name(label))
    class keyed:
        @task()
        def only(context: Context) -> None:
            context.set("ran", True)

    return workflow_of(keyed).name


def _runs_of(runner: DefaultRunner, workflow_name: str) -> int:
    return len(runner.list_executions_page(workflow_name=workflow_name, limit=500).items)


def test_the_same_key_returns_the_same_run(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf = _noop(name)
    first = runner.schedule_workflow(wf, {"order": 42}, idempotency_key="order-42")
    again = runner.schedule_workflow(wf, {"order": 42}, idempotency_key="order-42")
    assert again == first
    result = runner.execute(wf, {"order": 42}, timeout=30, idempotency_key="order-42")
    assert result.execution_id == first and result.status == "completed"
    other = runner.schedule_workflow(wf, {"order": 42}, idempotency_key="order-43")
    assert other != first
    plain = runner.schedule_workflow(wf, {"order": 42})
    assert plain not in (first, other)  # no key: a new run every time
    assert runner.start_run(wf, {"order": 42}, idempotency_key="order-42") == (first, False)


def test_the_same_key_with_another_body_is_a_conflict(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf = _noop(name)
    other_wf = _noop(name, "other")
    eid = runner.schedule_workflow(wf, {"order": 1}, idempotency_key="k")
    with pytest.raises(IdempotencyConflictError, match=eid):
        runner.schedule_workflow(wf, {"order": 2}, idempotency_key="k")
    with pytest.raises(IdempotencyConflictError, match="another workflow or context"):
        runner.schedule_workflow(other_wf, {"order": 1}, idempotency_key="k")
    assert _runs_of(runner, wf) == 1 and _runs_of(runner, other_wf) == 0


def test_a_long_key_is_refused(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf = _noop(name)
    with pytest.raises(RequestError, match="at most 255 characters"):
        runner.schedule_workflow(wf, idempotency_key="x" * 256)
    with pytest.raises(RequestError, match="non-empty"):
        runner.schedule_workflow(wf, idempotency_key="")
    eid = runner.schedule_workflow(wf, idempotency_key="y" * 255)  # the limit itself is fine
    assert runner.schedule_workflow(wf, idempotency_key="y" * 255) == eid


def test_eight_threads_submitting_one_key_get_one_run(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf = _noop(name)
    for round_ in range(5):
        key = f"burst-{round_}"
        barrier = threading.Barrier(8)
        got: list[str] = []
        errors: list[BaseException] = []

        def submit(
            barrier: threading.Barrier,
            key: str,
            got: list[str],
            errors: list[BaseException],
        ) -> None:
            try:
                barrier.wait(10)
                got.append(runner.schedule_workflow(wf, {"r": 1}, idempotency_key=key))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=submit, args=(barrier, key, got, errors)) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert len(got) == 8 and len(set(got)) == 1
        assert _runs_of(runner, wf) == round_ + 1
        assert runner.wait(got[0], timeout=30).status == "completed"


SUBMITTER = textwrap.dedent(
    """
    import sys, time
    from cloacina import Context, DefaultRunner, task, workflow

    url, wf_name, key_prefix, start_at, rounds = sys.argv[1:6]

    @workflow(name=wf_name)
    class keyed:
        @task()
        def only(context: Context) -> None:
            context.set("ran", True)

    with DefaultRunner(url, execute_tasks=False) as runner:
        while time.time() < float(start_at):
            time.sleep(0.001)
        for i in range(int(rounds)):
            eid = runner.schedule_workflow(wf_name, {"i": i}, idempotency_key=f"{key_prefix}-{i}")
            print(i, eid, flush=True)
    """
)


def test_two_processes_submitting_the_same_keys_get_one_run_each(
    postgres_url: str, name: Callable[[str], str], tmp_path: Path
) -> None:
    """Two machines (here: processes) submit the same 30 keys at the same moment on
    PostgreSQL: each key names one run, and both processes are told its id."""
    import time

    script = tmp_path / "submit.py"
    script.write_text(SUBMITTER)
    wf = name("two_procs")
    with DefaultRunner(postgres_url, execute_tasks=False):
        pass  # migrated before the race
    start_at = str(time.time() + 3.0)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), postgres_url, wf, wf, start_at, "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        outputs.append(dict(line.split() for line in out.splitlines()))
    assert len(outputs[0]) == 30 and outputs[0] == outputs[1]
    with DefaultRunner(postgres_url, execute_tasks=False) as reader:
        assert _runs_of(reader, wf) == 30
        ids = {
            r.execution_id for r in reader.list_executions_page(workflow_name=wf, limit=500).items
        }
    assert ids == set(outputs[0].values())


def test_a_key_taken_while_the_submission_was_under_way_returns_the_holder(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """The submission read no run with the key, then another transaction took it before
    the submission's own commit: the unique index refuses it, the submission's run is
    rolled back, and the holder's id comes back (the path two machines racing take)."""
    import time

    from cloacina.service.run_control import fingerprint
    from cloacina.store.records import NewTask

    wf_name = _noop(name)
    wf = runner.resolve(wf_name)
    got: list[str] = []
    before = len(runner.list_executions_page(workflow_name=wf_name, limit=500).items)
    with runner.store.write() as tx:
        tx.create_execution(
            "11111111-1111-1111-1111-111111111111",
            tenant=runner.tenant,
            package=wf.package,
            workflow_name=wf.name,
            workflow_version=wf.version,
            input_json="{}",
            tasks=[NewTask("only", 0, (), 1)],
            now=time.time(),
        )
        assert (
            tx.claim_idempotency_key(
                "11111111-1111-1111-1111-111111111111",
                runner.tenant,
                "raced",
                fingerprint(wf.name, {}),
            )
            is None
        )
        racer = threading.Thread(
            target=lambda: got.append(runner.schedule_workflow(wf_name, idempotency_key="raced"))
        )
        racer.start()
        time.sleep(0.5)  # the racer read no holder and waits for our commit
        assert not got
    racer.join(30)
    assert got == ["11111111-1111-1111-1111-111111111111"]
    after = runner.list_executions_page(workflow_name=wf_name, limit=500).items
    assert len(after) == before + 1  # the racer's own run was rolled back
