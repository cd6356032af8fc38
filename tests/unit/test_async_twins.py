"""Both faces of the API, DefaultRunner and Client, have the same async twins (one
implementation: cloacina.async_twins), each a coroutine taking its blocking twin's
arguments."""

from __future__ import annotations

import asyncio
import inspect

from cloacina import Client, DefaultRunner
from cloacina.async_twins import AsyncTwins

TWINS = (
    "execute",
    "schedule_workflow",
    "wait",
    "get_execution",
    "cancel",
    "pause",
    "resume",
    "shutdown",
)


def test_both_faces_have_every_twin_from_one_place() -> None:
    for face in (DefaultRunner, Client):
        assert issubclass(face, AsyncTwins)
        for name in TWINS:
            twin = getattr(face, f"{name}_async")
            assert inspect.iscoroutinefunction(twin), (face, name)
            assert twin is getattr(AsyncTwins, f"{name}_async")
            assert callable(getattr(face, name))


def test_a_twin_runs_its_blocking_call_on_a_thread() -> None:
    seen: list[tuple[object, ...]] = []

    class Face(AsyncTwins):
        def pause(self, execution_id: str) -> None:
            seen.append(("pause", execution_id))

        def cancel(self, execution_id: str, *, reason: str | None = None) -> None:
            seen.append(("cancel", execution_id, reason))

    face = Face()
    asyncio.run(face.pause_async("e1"))  # type: ignore[misc]
    asyncio.run(face.cancel_async("e2", reason="stop"))  # type: ignore[misc]
    assert seen == [("pause", "e1"), ("cancel", "e2", "stop")]
