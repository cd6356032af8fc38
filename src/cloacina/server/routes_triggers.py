"""``/api/v1/triggers``: the poll functions that start runs (viewer reads, operator pauses
and resumes them; audited as ``trigger.pause`` / ``trigger.resume``).

A trigger is the JSON of :meth:`cloacina.service.triggers.TriggerInfo.to_dict`;
``{name}`` is its name (URL-encoded: a default name may hold ``.``, ``<`` and ``>``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cloacina.server.auth import OPERATOR, VIEWER, Caller

router = APIRouter(prefix="/api/v1/triggers", tags=["triggers"])


async def _doc(caller: Caller, name: str) -> JSONResponse:
    found = await run_in_threadpool(caller.runner.get_trigger, name)
    return JSONResponse(found.to_dict())


@router.get("", summary="The triggers, by name, and how their polls went")
async def list_triggers(caller: Annotated[Caller, Depends(VIEWER)]) -> JSONResponse:
    items = await run_in_threadpool(caller.runner.list_triggers)
    return JSONResponse({"items": [t.to_dict() for t in items]})


@router.get("/{name}", summary="A trigger (404 names the nearest one)")
async def get_trigger(name: str, caller: Annotated[Caller, Depends(VIEWER)]) -> JSONResponse:
    return await _doc(caller, name)


@router.post("/{name}/pause", summary="Stop polling a trigger, on every worker, until resumed")
async def pause_trigger(name: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    await caller.run(caller.runner.pause_trigger, name)
    return await _doc(caller, name)


@router.post("/{name}/resume", summary="Poll a paused trigger again, at once")
async def resume_trigger(name: str, caller: Annotated[Caller, Depends(OPERATOR)]) -> JSONResponse:
    await caller.run(caller.runner.resume_trigger, name)
    return await _doc(caller, name)
