"""``/api/v1/workflows``: the workflows a tenant can run, with their task graphs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cloacina.server.auth import VIEWER, Caller
from cloacina.server.views import workflow_json

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])


@router.get("", summary="The workflows this tenant can run")
async def list_workflows(caller: Annotated[Caller, Depends(VIEWER)]) -> JSONResponse:
    infos = await run_in_threadpool(caller.runner.describe_workflows)
    return JSONResponse({"items": [workflow_json(w) for w in infos]})


@router.get("/{name}", summary="One workflow (404 names the nearest known one)")
async def get_workflow(name: str, caller: Annotated[Caller, Depends(VIEWER)]) -> JSONResponse:
    info = await run_in_threadpool(caller.runner.describe_workflow, name)
    return JSONResponse(workflow_json(info))


@router.get("/{name}/stats", summary="Where a workflow's time goes, over its recent runs")
async def get_workflow_stats(
    name: str,
    caller: Annotated[Caller, Depends(VIEWER)],
    last: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSONResponse:
    """Per task p50/p95 duration and queue wait, failure rate, and the critical path of the
    ``last`` finished runs (``cloacina workflows stats``)."""
    stats = await run_in_threadpool(caller.runner.workflow_stats, name, last)
    return JSONResponse(stats.to_dict())


__all__ = ["router"]
