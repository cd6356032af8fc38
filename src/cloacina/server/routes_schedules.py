"""``/api/v1/schedules``: cron schedules of workflows (viewer reads, operator changes; changes
are audited as ``schedule.add|update|pause|resume|remove``).

A schedule is the JSON of :meth:`cloacina.service.schedules.Schedule.to_dict`; its history
the JSON of :meth:`~cloacina.service.schedules.ScheduleFire.to_dict` each. ``{schedule_id}``
is an id, a unique id prefix, or the schedule's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloacina.server.auth import OPERATOR, VIEWER, Caller
from cloacina.service.schedules import UNSET

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])


class AddSchedule(BaseModel):
    """``POST /api/v1/schedules``."""

    workflow: str = Field(min_length=1, description="a workflow name (package::name@version)")
    cron: str = Field(min_length=1, description="5 fields, 6 with seconds first, or @daily...")
    timezone: str = Field(default="UTC", description="an IANA zone, e.g. Europe/Berlin")
    context: dict[str, Any] = Field(default_factory=dict, description="each run's context")
    catchup: str = Field(default="skip", description="skip, latest or all")
    max_catchup: int = Field(default=100, description="at most this many missed times (all)")
    start: str | float | None = Field(default=None, description="no earlier time fires")
    end: str | float | None = Field(default=None, description="no later time fires")
    name: str | None = Field(default=None, description="unique (default: <workflow>:<id>)")


class UpdateSchedule(BaseModel):
    """``PATCH /api/v1/schedules/{id}``: what is given changes (``start``/``end`` null
    removes the bound); a new cron, zone or bound applies from now."""

    cron: str | None = None
    timezone: str | None = None
    context: dict[str, Any] | None = None
    catchup: str | None = None
    max_catchup: int | None = None
    start: str | float | None = None
    end: str | float | None = None
    name: str | None = None
    workflow: str | None = None


async def _doc(caller: Caller, schedule_id: str, status_code: int = 200) -> JSONResponse:
    found = await run_in_threadpool(caller.runner.get_schedule, schedule_id)
    return JSONResponse(found.to_dict(), status_code=status_code)


@router.get("", summary="The schedules, by name")
async def list_schedules(
    caller: Annotated[Caller, Depends(VIEWER)], workflow: str | None = None
) -> JSONResponse:
    items = await run_in_threadpool(caller.runner.list_schedules, workflow)
    return JSONResponse({"items": [s.to_dict() for s in items]})


@router.post("", status_code=201, summary="Add a cron schedule of a workflow")
async def add_schedule(
    body: AddSchedule, caller: Annotated[Caller, Depends(OPERATOR)]
) -> JSONResponse:
    """Store a schedule; it fires first at its first time after now. Bad input (cron with
    the position of the fault, zone, catch-up, bounds, unknown workflow) stores nothing."""
    schedule_id = await caller.run(
        caller.runner.add_schedule,
        body.workflow,
        body.cron,
        timezone=body.timezone,
        context=body.context,
        catchup=body.catchup,
        max_catchup=body.max_catchup,
        start=body.start,
        end=body.end,
        name=body.name,
    )
    return await _doc(caller, schedule_id, 201)


@router.get("/{schedule_id}", summary="A schedule")
async def get_schedule(
    schedule_id: str, caller: Annotated[Caller, Depends(VIEWER)]
) -> JSONResponse:
    return await _doc(caller, schedule_id)


@router.patch("/{schedule_id}", summary="Change a schedule")
async def update_schedule(
    schedule_id: str, body: UpdateSchedule, caller: Annotated[Caller, Depends(OPERATOR)]
) -> JSONResponse:
    given = body.model_fields_set
    updated = await caller.run(
        caller.runner.update_schedule,
        schedule_id,
        cron=body.cron,
        timezone=body.timezone,
        context=body.context,
        catchup=body.catchup,
        max_catchup=body.max_catchup,
        start=body.start if "start" in given else UNSET,
        end=body.end if "end" in given else UNSET,
        name=body.name,
        workflow=body.workflow,
    )
    return JSONResponse(updated.to_dict())


@router.delete("/{schedule_id}", status_code=204, summary="Remove a schedule and its history")
async def remove_schedule(
    schedule_id: str, caller: Annotated[Caller, Depends(OPERATOR)]
) -> Response:
    await caller.run(caller.runner.remove_schedule, schedule_id)
    return Response(status_code=204)


@router.post("/{schedule_id}/pause", summary="Stop firing a schedule until resumed")
async def pause_schedule(
    schedule_id: str, caller: Annotated[Caller, Depends(OPERATOR)]
) -> JSONResponse:
    await caller.run(caller.runner.pause_schedule, schedule_id)
    return await _doc(caller, schedule_id)


@router.post("/{schedule_id}/resume", summary="Fire a paused schedule again (its catch-up)")
async def resume_schedule(
    schedule_id: str, caller: Annotated[Caller, Depends(OPERATOR)]
) -> JSONResponse:
    await caller.run(caller.runner.resume_schedule, schedule_id)
    return await _doc(caller, schedule_id)


@router.get("/{schedule_id}/history", summary="A schedule's fires, newest first")
async def schedule_history(
    schedule_id: str,
    caller: Annotated[Caller, Depends(VIEWER)],
    limit: Annotated[int, Query(ge=1, le=10000)] = 50,
) -> JSONResponse:
    fires = await run_in_threadpool(caller.runner.schedule_history, schedule_id, limit)
    return JSONResponse({"items": [f.to_dict() for f in fires]})
