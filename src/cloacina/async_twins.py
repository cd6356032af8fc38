"""The ``_async`` twins of the blocking calls (DESIGN §3), written once for both faces of the
same API: :class:`~cloacina.DefaultRunner` (in process) and :class:`~cloacina.Client` (over
HTTP). Each runs its blocking twin on a worker thread, so an event loop never blocks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from cloacina.model.context import Context
from cloacina.model.status import WorkflowResult

ContextArg = Context | Mapping[str, Any] | None


class BlockingCalls(Protocol):
    """What a class needs for :class:`AsyncTwins`: the blocking calls themselves."""

    def execute(
        self,
        name: Any,
        context: ContextArg = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowResult: ...

    def schedule_workflow(
        self, name: Any, context: ContextArg = None, *, idempotency_key: str | None = None
    ) -> str: ...

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult: ...

    def get_execution(self, execution_id: str) -> WorkflowResult: ...

    def cancel(self, execution_id: str, *, reason: str | None = None) -> None: ...

    def pause(self, execution_id: str) -> None: ...

    def resume(self, execution_id: str) -> None: ...

    def shutdown(self, wait: bool = True) -> None: ...


class AsyncTwins:
    """``execute_async``, ``schedule_workflow_async``, ``wait_async``,
    ``get_execution_async``, ``cancel_async``, ``pause_async``, ``resume_async`` and
    ``shutdown_async``: the same arguments and results as their blocking twins."""

    async def execute_async(
        self: BlockingCalls,
        name: Any,
        context: ContextArg = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowResult:
        return await asyncio.to_thread(
            self.execute, name, context, timeout, idempotency_key=idempotency_key
        )

    async def schedule_workflow_async(
        self: BlockingCalls,
        name: Any,
        context: ContextArg = None,
        idempotency_key: str | None = None,
    ) -> str:
        return await asyncio.to_thread(
            self.schedule_workflow, name, context, idempotency_key=idempotency_key
        )

    async def wait_async(
        self: BlockingCalls, execution_id: str, timeout: float | None = None
    ) -> WorkflowResult:
        return await asyncio.to_thread(self.wait, execution_id, timeout)

    async def get_execution_async(self: BlockingCalls, execution_id: str) -> WorkflowResult:
        return await asyncio.to_thread(self.get_execution, execution_id)

    async def cancel_async(
        self: BlockingCalls, execution_id: str, *, reason: str | None = None
    ) -> None:
        await asyncio.to_thread(self.cancel, execution_id, reason=reason)

    async def pause_async(self: BlockingCalls, execution_id: str) -> None:
        await asyncio.to_thread(self.pause, execution_id)

    async def resume_async(self: BlockingCalls, execution_id: str) -> None:
        await asyncio.to_thread(self.resume, execution_id)

    async def shutdown_async(self: BlockingCalls) -> None:
        await asyncio.to_thread(self.shutdown)


__all__ = ["AsyncTwins"]
