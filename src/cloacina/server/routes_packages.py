"""``/api/v1/packages``: upload (streamed, refused with 413 past the limit before the rest is
read), list, inspect, download and delete ``.cloacina`` packages."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cloacina.errors import PayloadTooLargeError, RequestError
from cloacina.server.auth import ADMIN, VIEWER, Caller
from cloacina.server.views import package_detail_json, package_json

router = APIRouter(prefix="/api/v1/packages", tags=["packages"])

SIGNATURE_HEADER = "X-Cloacina-Signature"


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the package is larger than this server accepts ({limit} bytes, setting "
        "max_upload_bytes); build a smaller package or raise the limit"
    )


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, read as it arrives; :class:`PayloadTooLargeError` as soon as it
    (or its announced Content-Length) passes ``limit`` bytes, without reading the rest."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise RequestError("Content-Length is not a number", field="Content-Length") from None
        if announced > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _signature(value: str | None) -> bytes | None:
    if value is None or value.strip() == "":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"{SIGNATURE_HEADER} must be the detached signature in base64",
            field=SIGNATURE_HEADER,
        ) from None


@router.post(
    "",
    status_code=201,
    summary="Register a package (its archive's bytes)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_package(
    request: Request,
    caller: Annotated[Caller, Depends(ADMIN)],
    replace: bool = False,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> JSONResponse:
    """201 with the package, or 200 with ``"created": false`` when identical bytes were
    registered already. A package that fails verification is 422 with the reason."""
    runner = caller.runner
    detached = _signature(signature)
    archive = await read_limited(request, runner.settings.max_upload_bytes)
    if not archive:
        raise RequestError(
            "the request body is empty: send the .cloacina archive's bytes", field="body"
        )
    before = {p.id for p in await run_in_threadpool(runner.list_packages)}
    package_id = await caller.run(runner.register_workflow, archive, detached, replace=replace)
    info = next(
        (p for p in await run_in_threadpool(runner.list_packages) if p.id == package_id), None
    )
    created = package_id not in before
    doc = (
        package_json(info)
        if info is not None
        else {"package_id": package_id, "name": None, "version": None, "workflows": []}
    )
    doc["created"] = created
    return JSONResponse(doc, status_code=201 if created else 200)


@router.get("", summary="Registered packages")
async def list_packages(caller: Annotated[Caller, Depends(VIEWER)]) -> JSONResponse:
    infos = await run_in_threadpool(caller.runner.list_packages)
    return JSONResponse({"items": [package_json(p) for p in infos]})


@router.get("/{name}/{version}", summary="A package version with its manifest")
async def get_package(
    name: str, version: str, caller: Annotated[Caller, Depends(VIEWER)]
) -> JSONResponse:
    detail = await run_in_threadpool(caller.runner.get_package, name, version)
    return JSONResponse(package_detail_json(detail))


@router.get("/{name}/{version}/archive", summary="A package version's archive")
async def get_archive(
    name: str, version: str, caller: Annotated[Caller, Depends(VIEWER)]
) -> Response:
    data = await run_in_threadpool(caller.runner.get_package_archive, name, version)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}-{version}.cloacina"'},
    )


@router.delete("/{name}/{version}", status_code=204, summary="Unregister a package version")
async def delete_package(
    name: str, version: str, caller: Annotated[Caller, Depends(ADMIN)]
) -> Response:
    await caller.run(caller.runner.unregister_workflow, name, version)
    return Response(status_code=204)


__all__ = ["read_limited", "router"]
