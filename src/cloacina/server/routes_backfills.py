"""``/api/v1/backfills``: start a backfill, list and read them with their progress, pause,
resume and cancel them (viewer reads, operator changes; changes are audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloacina.errors import WorkflowNotFoundError
from cloacina.server.auth import OPERATOR, VIEWER, Caller

router = APIRouter(prefix="/api/v1/backfills", tags=["backfills"])


class StartBackfill(BaseModel):
    """``POST /api/v1/backfills``: a workflow, a range of its scheduled times, and how."""

    workflow: str = Field(min_length=1, description="a workflow name (package::name@version)")
    start: str | float = Field(description="the first time: ISO 8601 or epoch seconds")
    end: str | float = Field(description="the last time (included): ISO 8601 or epoch seconds")
    cron: str | None = Field(
        default=None, description="the times (null: the workflow's one declared schedule)"
    )
    timezone: str = Field(default="UTC", description="the cron's zone (and of times without one)")
    only_missing: bool = Field(default=True, description="skip times that have a run already")
    max_parallel: int = Field(default=4, ge=1, description="unfinished runs at most at once")
    context: dict[str, Any] = Field(default_factory=dict, description="each run's input context")
    force: bool = Field(default=False, description="allow more than 100,000 times")


@router.post("", status_code=201, summary="Start a backfill")
async def start_backfill(
    body: StartBackfill, caller: Annotated[Caller, Depends(OPERATOR)]
) -> JSONResponse:
    """Store a backfill of ``workflow`` for every time of ``cron`` from ``start`` to ``end``;
    201 with the backfill (and its progress) at once. The server's workers make its runs."""
    runner = caller.runner
    try:
        backfill_id = await caller.run(
            runner.backfill,
            body.workflow,
            body.start,
            body.end,
            cron=body.cron,
            only_missing=body.only_missing,
            max_parallel=body.max_parallel,
            context=body.context,
            timezone=body.timezone,
            force=body.force,
        )
    except WorkflowNotFoundError:
        # The service's lookup names the nearest known workflow.
        await run_in_threadpool(runner.describe_workflow, body.workflow)
        raise
    found = await run_in_threadpool(runner.get_backfill, backfill_id)
    return JSONResponse(found.to_dict(), status_code=201)


@router.get("", summary="List backfills, newest first, with their progress")
async def list_backfills(
    caller: Annotated[Caller, Depends(VIEWER)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    items = await run_in_threadpool(caller.runner.list_backfills, limit)
    return JSONResponse({"items": [b.to_dict() for b in items]})


@router.get("/{backfill_id}", summary="A backfill and its progress")
async def get_backfill(
    backfill_id: str, caller: Annotated[Caller, Depends(VIEWER)]
) -> JSONResponse:
    found = await run_in_threadpool(caller.runner.get_backfill, backfill_id)
    return JSONResponse(found.to_dict())


async def _control(caller: Caller, action: str, backfill_id: str) -> JSONResponse:
    runner = caller.runner
    result = await caller.run(getattr(runner, f"{action}_backfill"), backfill_id)
    doc = (await run_in_threadpool(runner.get_backfill, backfill_id)).to_dict()
    if action == "cancel":
        doc["cancelled_runs"] = result
    return JSONResponse(doc)


@router.post("/{backfill_id}/pause", summary="Make no new runs until resumed")
async def pause(backfill_id: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    return await _control(caller, "pause", backfill_id)


@router.post("/{backfill_id}/resume", summary="Go on making a paused backfill's runs")
async def resume(backfill_id: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    return await _control(caller, "resume", backfill_id)


@router.post("/{backfill_id}/cancel", summary="Stop a backfill and cancel its unfinished runs")
async def cancel(backfill_id: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    return await _control(caller, "cancel", backfill_id)
