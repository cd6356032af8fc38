"""The task-log queries of the store (store/logs.py, ``WriteTx.add_task_logs``) on SQLite
and PostgreSQL: chunks come back in order, by attempt and after an id, and a chunk of a run
that no longer exists is dropped instead of failing its transaction."""

from __future__ import annotations

from collections.abc import Callable

from cloacina import Context, DefaultRunner, TaskStatus, task, workflow
from cloacina.store.records import NewLogChunk


def test_chunks_by_attempt_and_after_id(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    wf_name = name("logstore")

    @workflow(name=wf_name)
    class Wf:
        @task()
        def a(context: Context) -> None:
            pass

        @task(dependencies=[a])
        def b(context: Context) -> None:
            pass

    client = make_runner(execute_tasks=False)
    eid = client.schedule_workflow(wf_name)
    store = client.store
    with store.write() as tx:
        tx.add_task_logs(
            [
                NewLogChunk(eid, "a", 1, "stdout", 1.0, "one\n"),
                NewLogChunk(eid, "b", 1, "stderr", 2.0, "other task\n"),
                NewLogChunk(eid, "a", 2, "stdout", 3.0, "second attempt\n"),
                NewLogChunk("no-such-run", "a", 1, "stdout", 3.0, "dropped\n"),
                NewLogChunk(eid, "a", 1, "log", 4.0, "two\n"),
            ]
        )
    store.append_task_logs([NewLogChunk(eid, "a", 1, "stderr", 5.0, "ünïcode three\n")])

    first = store.read_task_logs(eid, "a", 1)
    assert [c.text for c in first] == ["one\n", "two\n", "ünïcode three\n"]
    assert [c.stream for c in first] == ["stdout", "log", "stderr"]
    assert first[0].created_at == 1.0
    assert [c.text for c in store.read_task_logs(eid, "a", 1, after_id=first[0].id)] == [
        "two\n",
        "ünïcode three\n",
    ]
    assert [c.text for c in store.read_task_logs(eid, "a", 1, limit=1)] == ["one\n"]
    assert [c.text for c in store.read_task_logs(eid, "a", 2)] == ["second attempt\n"]
    assert store.read_task_logs(eid, "a", 3) == []
    assert [(c.task_id, c.attempt) for c in store.read_run_logs(eid)] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("a", 1),
        ("a", 1),
    ]
    assert store.read_run_logs("no-such-run") == []

    assert store.task_attempt_state(eid, "a") == (0, TaskStatus.READY)
    assert store.task_attempt_state(eid, "b") == (0, TaskStatus.PENDING)
    assert store.task_attempt_state(eid, "zzz") is None
