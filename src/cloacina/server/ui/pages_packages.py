"""The web UI's packages page (DESIGN §12, issue 11): every registered package version with
its signature status and workflows; for admins, upload (file picker or drag and drop, with
the verification result or the refusal reason) and delete. Registration goes through the
tenant's runner, audited as ``/api/v1/packages`` does it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from cloacina.errors import CloacinaError, NotFoundError, PayloadTooLargeError, RequestError
from cloacina.registry.registry import PackageInfo
from cloacina.server.ui.pages import page, refuse_post, to_signin
from cloacina.server.ui.session import Viewer, viewer_of
from cloacina.service.audit import acting_as

router = APIRouter(include_in_schema=False)

T = TypeVar("T")

#: Read from an upload at a time (the whole is bounded by the runner's max_upload_bytes).
CHUNK = 1 << 20
#: Room for the upload form's own fields and multipart framing beyond its files.
FORM_SLACK = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What an upload came to: accepted (``ok``) with what was registered, or refused."""

    ok: bool
    message: str
    package: PackageInfo | None = None


def registered(info: PackageInfo) -> datetime:
    return datetime.fromtimestamp(info.registered_at, tz=UTC)


def grouped(infos: list[PackageInfo]) -> list[tuple[str, list[PackageInfo]]]:
    """Packages by name, each one's versions newest registration first."""
    by_name: dict[str, list[PackageInfo]] = {}
    for info in infos:
        by_name.setdefault(info.package, []).append(info)
    return [
        (name, sorted(versions, key=lambda p: p.registered_at, reverse=True))
        for name, versions in sorted(by_name.items())
    ]


def signature_word(info: PackageInfo) -> str:
    """The signature status as the service reports it (its verified signer, or none)."""
    return f"signed by {info.signer}" if info.signer else "unsigned"


async def read_upload(upload: UploadFile | None, limit: int, what: str) -> bytes:
    """An uploaded file's bytes, refused past ``limit`` bytes without reading on."""
    if upload is None:
        return b""
    data = bytearray()
    while chunk := await upload.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLargeError(too_large(limit, what))
    return bytes(data)


def too_large(limit: int, what: str) -> str:
    return (
        f"the {what} is larger than this server accepts ({limit} bytes, setting "
        "max_upload_bytes); build a smaller package or raise the limit"
    )


def as_actor(viewer: Viewer, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` audited as the signed-in key's actor (as the API's calls)."""
    with acting_as(viewer.identity.actor):
        return fn(*args, **kwargs)


def listing(request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    infos = viewer.runner.list_packages()
    return page(
        request,
        "packages.html",
        status=status,
        viewer=viewer,
        packages=grouped(infos),
        registered=registered,
        signature_word=signature_word,
        **{"outcome": None, "notice": None, **extra},
    )


@router.get("/packages")
async def packages_page(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    notice = request.query_params.get("deleted")
    shown = f"Deleted {notice}." if notice else None
    return await run_in_threadpool(lambda: listing(request, viewer, notice=shown))


def announced_too_large(request: Request, limit: int) -> bool:
    """Whether the form's announced length passes the package limit (plus the form's own
    fields, the signature's limit), so that it is refused before a byte is read."""
    length = request.headers.get("content-length") or ""
    return length.isdigit() and int(length) > 2 * limit + FORM_SLACK


def uploaded(value: object) -> UploadFile | None:
    return value if isinstance(value, UploadFile) else None


@router.post("/packages")
async def upload_package(request: Request) -> Response:
    """Register the uploaded ``.cloacina`` archive (and its detached signature, if given):
    the page again with the verification result (201/200) or the refusal reason (4xx)."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    runner = viewer.runner
    limit = runner.settings.max_upload_bytes
    if announced_too_large(request, limit):
        outcome = Outcome(False, too_large(limit, "package"))
        return await run_in_threadpool(lambda: listing(request, viewer, 413, outcome=outcome))
    # Parsed here, not by FastAPI's parameters, so that the length is checked first.
    async with request.form(max_files=2, max_fields=10) as form:
        refused = refuse_post(
            request, viewer, str(form.get("csrf") or ""), "admin", "Uploading a package"
        )
        if refused is not None:
            return refused
        return await register(request, viewer, form)


async def register(request: Request, viewer: Viewer, form: FormData) -> Response:
    runner = viewer.runner
    limit = runner.settings.max_upload_bytes
    package, signature = uploaded(form.get("package")), uploaded(form.get("signature"))
    replace = bool(form.get("replace"))
    try:
        archive = await read_upload(package, limit, "package")
        if not archive:
            raise RequestError("choose a .cloacina package file to upload", field="package")
        detached = await read_upload(signature, limit, "signature") or None
        before = {p.id for p in await run_in_threadpool(runner.list_packages)}
        package_id = await run_in_threadpool(
            as_actor, viewer, runner.register_workflow, archive, detached, replace=replace
        )
    except PayloadTooLargeError as exc:
        outcome = Outcome(False, str(exc))
        return await run_in_threadpool(lambda: listing(request, viewer, 413, outcome=outcome))
    except CloacinaError as exc:
        # A malformed archive, a bad signature, a name conflict: the engine's own reason.
        outcome = Outcome(False, str(exc))
        return await run_in_threadpool(lambda: listing(request, viewer, 422, outcome=outcome))
    infos = await run_in_threadpool(runner.list_packages)
    info = next((p for p in infos if p.id == package_id), None)
    created = package_id not in before
    name = f"{info.package} {info.version}" if info is not None else package_id
    if created:
        workflows = ", ".join(info.workflows) if info is not None else ""
        signed = signature_word(info) if info is not None else ""
        message = f"Verified and registered {name} ({signed}); workflows: {workflows or 'none'}."
    else:
        message = f"{name} was registered already with these exact bytes; nothing changed."
    outcome = Outcome(True, message, info)
    status = 201 if created else 200
    return await run_in_threadpool(lambda: listing(request, viewer, status, outcome=outcome))


@router.post("/packages/{name}/{version}/delete")
async def delete_package(
    request: Request, name: str, version: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Unregister a package version (runs in flight keep their version), then the list."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    refused = refuse_post(request, viewer, csrf, "admin", "Deleting a package")
    if refused is not None:
        return refused
    try:
        await run_in_threadpool(as_actor, viewer, viewer.runner.unregister_workflow, name, version)
    except CloacinaError as exc:
        status = 404 if isinstance(exc, NotFoundError) else 409
        return page(request, "message.html", status=status, viewer=viewer, message=str(exc))
    query = urlencode({"deleted": f"{name} {version}"})
    return RedirectResponse(f"/packages?{query}", status_code=303)


#: The packages page's paths (reached with the session cookie, not an API key).
PATHS = frozenset({"/packages", "/packages/{name}/{version}/delete"})

__all__ = ["PATHS", "grouped", "read_upload", "router", "signature_word"]
