"""Administration: API keys, the audit log (admin) and the workers (viewer).

Keys and the audit log live in the default tenant's database (the server's runner reaches it
as its control store). A key bound to one tenant administers that tenant only: it sees and
revokes that tenant's keys, makes keys for it alone, and reads its rows of the audit log;
another tenant's key is a 404 to it, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloacina.errors import ApiKeyNotFoundError, PermissionDeniedError
from cloacina.server.auth import ADMIN, VIEWER, Caller, key_cache_of
from cloacina.server.routes_executions import parse_time
from cloacina.server.views import worker_json

router = APIRouter(prefix="/api/v1", tags=["administration"])


class CreateKey(BaseModel):
    """``POST /api/v1/keys``."""

    name: str = Field(min_length=1, description="who or what the key is for")
    role: str = Field(description="viewer, operator or admin")
    tenant: str | None = Field(default=None, description="the tenant it serves (null: every one)")
    expires_in_days: float | None = Field(default=None, gt=0, description="null: until revoked")


@router.get("/workers", summary="The tenant's workers")
async def list_workers(
    caller: Annotated[Caller, Depends(VIEWER)], include_stopped: bool = False
) -> JSONResponse:
    workers = await run_in_threadpool(caller.runner.list_workers, include_stopped)
    return JSONResponse({"items": [worker_json(w) for w in workers]})


@router.post("/keys", status_code=201, summary="Make an API key (its secret is shown once)")
async def create_key(body: CreateKey, caller: Annotated[Caller, Depends(ADMIN)]) -> JSONResponse:
    tenant = body.tenant
    if caller.key_tenant is not None:
        if tenant is None:
            tenant = caller.key_tenant  # a tenant's admin makes keys of its tenant only
        elif tenant != caller.key_tenant:
            raise PermissionDeniedError(
                f"this API key administers tenant {caller.key_tenant!r} only; it cannot make "
                f"a key for tenant {tenant!r}"
            )
    expires = None if body.expires_in_days is None else body.expires_in_days * 86400.0
    created = await caller.run(
        caller.state.primary.create_api_key, body.name, body.role, tenant, expires
    )
    doc = created.info.to_dict()
    doc.update(id=created.id, key=created.key)
    return JSONResponse(doc, status_code=201)


@router.get("/keys", summary="The API keys (never their secrets)")
async def list_keys(caller: Annotated[Caller, Depends(ADMIN)]) -> JSONResponse:
    keys = await run_in_threadpool(caller.state.primary.list_api_keys)
    if caller.key_tenant is not None:
        keys = [k for k in keys if k.tenant == caller.key_tenant]
    return JSONResponse({"items": [k.to_dict() for k in keys]})


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(
    request: Request, key_id: str, caller: Annotated[Caller, Depends(ADMIN)]
) -> Response:
    primary = caller.state.primary
    if caller.key_tenant is not None:
        info = await run_in_threadpool(primary.get_api_key, key_id)
        if info.tenant != caller.key_tenant:
            raise ApiKeyNotFoundError(f"no API key with id {key_id!r}")
    await caller.run(primary.revoke_api_key, key_id)
    key_cache_of(request).clear()  # the revoked key stops working now, not in a second
    return Response(status_code=204)


@router.get("/audit", summary="The audit log, newest first")
async def list_audit(
    caller: Annotated[Caller, Depends(ADMIN)],
    since: str | None = None,
    until: str | None = None,
    action: str | None = None,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    actor: Annotated[str | None, Query(description="rows whose actor contains this")] = None,
    outcome: Annotated[str | None, Query(description="ok, or failed (any error)")] = None,
) -> JSONResponse:
    # A tenant's key reads its tenant's rows; a key for every tenant reads them all, or
    # those of the tenant it names.
    if caller.key_tenant is not None:
        if tenant not in (None, "", caller.key_tenant):
            raise PermissionDeniedError(
                f"this API key administers tenant {caller.key_tenant!r} only; it cannot read "
                f"the audit log of tenant {tenant!r}"
            )
        tenant = caller.key_tenant
    primary = caller.state.primary
    page = await run_in_threadpool(
        lambda: primary.list_audit(
            since=parse_time("since", since),
            until=parse_time("until", until),
            action=action or None,
            tenant=tenant or None,
            limit=limit,
            cursor=cursor or None,
            actor=actor or None,
            outcome=outcome or None,
        )
    )
    return JSONResponse(
        {"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor}
    )


__all__ = ["router"]
