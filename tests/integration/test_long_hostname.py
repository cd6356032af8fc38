"""A runner on a host with a long name (a Kubernetes pod's, up to 63 characters) starts and
runs work: its id fits the store's 64-character columns, and the full host name is kept."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.runner import WORKER_ID_MAX, make_worker_id

pytestmark = pytest.mark.timeout(60)

#: 63 characters: the longest label a Kubernetes pod name (and a Linux host name) can have.
LONG_HOST = "batch-ingest-worker-deployment-7f9c8d6b5-production-east-x4k2qz"


def test_long_hostname_runner_starts_and_runs(
    db_url: str, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(LONG_HOST) == 63
    monkeypatch.setattr("socket.gethostname", lambda: LONG_HOST)
    wf_name = name("long_host")

    @workflow(name=wf_name)
    class LongHost:
        @task
        def first(context: Context) -> None:
            context.insert("a", context["x"] + 1)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            context.insert("b", context["a"] + 1)

    with DefaultRunner(
        db_url, poll_interval=0.05, heartbeat_interval=0.1, stale_claim_threshold=0.5
    ) as runner:
        assert len(runner.worker_id) <= WORKER_ID_MAX
        host, pid, suffix = runner.worker_id.rsplit(":", 2)
        assert LONG_HOST.startswith(host) and host
        assert pid == str(os.getpid()) and len(suffix) == 8

        result = runner.execute(wf_name, {"x": 1}, timeout=20)
        assert result.status == "completed", result
        assert result.final_context == {"x": 1, "a": 2, "b": 3}

        workers = [w for w in runner.store.list_workers() if w.id == runner.worker_id]
        assert len(workers) == 1, runner.store.list_workers()
        assert workers[0].host == LONG_HOST
        assert workers[0].pid == os.getpid()


def test_runner_ids_fit_and_stay_unique() -> None:
    for host in ("", "h", "x" * 63, "y" * 255):
        for pid in (1, os.getpid(), 4194304, 10**12):
            ids = {make_worker_id(host, pid) for _ in range(50)}
            assert len(ids) == 50
            for worker_id in ids:
                assert len(worker_id) <= WORKER_ID_MAX
                assert worker_id.endswith(f":{pid}:{worker_id[-8:]}")
    assert make_worker_id("short", 42).startswith("short:42:")
