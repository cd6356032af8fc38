"""Every error the API answers is JSON ``{"error": {"code", "message"}}`` (DESIGN §9).

A :class:`~cloacina.errors.CloacinaError` maps to a status by its family (not found 404,
conflict 409, ...) and to a code made of its class name (``WorkflowNotFoundError`` ->
``workflow_not_found``), so a client can tell one error from another without reading the
message. FastAPI's own validation (422 by default) answers 400 here, naming the field.
Anything unexpected is a 500 whose message says nothing of the internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloacina.errors import (
    AuthenticationError,
    CloacinaError,
    ConflictError,
    ContextError,
    NotFoundError,
    PackageError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RequestError,
    RunnerClosedError,
    SettingsError,
    UnavailableError,
    WorkflowDefinitionError,
)

log = logging.getLogger("cloacina.server")

#: The families, most specific first: the first that matches decides the status.
STATUS_OF: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (PayloadTooLargeError, 413),
    (RequestError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnavailableError, 503),
    (RunnerClosedError, 503),
    # A package that fails verification (format, safety, signature, its code): understood
    # but refused.
    (PackageError, 422),
    (WorkflowDefinitionError, 422),
    (ContextError, 400),
    (SettingsError, 400),
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def status_of(exc: BaseException) -> int:
    """The HTTP status of a Cloacina error (500 for one of no known family)."""
    for family, status in STATUS_OF:
        if isinstance(exc, family):
            return status
    return 500


def code_of(exc: BaseException) -> str:
    """``WorkflowNotFoundError`` -> ``workflow_not_found`` (``CloacinaError`` ->
    ``cloacina``)."""
    name = type(exc).__name__
    if name.endswith("Error") and name != "Error":
        name = name[: -len("Error")]
    return _CAMEL.sub("_", name).lower()


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The error body; ``field`` (the field at fault of a 400) is added when known."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _loc_name(loc: Sequence[Any]) -> str:
    """``("body", "context", "x")`` -> ``context.x``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path") else []
    if loc and loc[0] == "header":
        return f"header {loc[-1]}"
    return ".".join(parts) or "body"


def validation_message(exc: RequestValidationError) -> tuple[str, str]:
    """The field at fault and a message naming it, from FastAPI's first validation error."""
    errors = exc.errors()
    if not errors:
        return "body", "the request is malformed"
    first = errors[0]
    kind = str(first.get("type", ""))
    loc = tuple(first.get("loc", ()))
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return "body", f"the request body is not valid JSON ({detail}); send a JSON object"
    field = _loc_name(loc)
    if kind == "missing":
        return field, f"field {field!r} is required"
    if kind in ("model_attributes_type", "dict_type") and field == "body":
        return field, "the request body must be a JSON object"
    return field, f"field {field!r}: {first.get('msg', 'is invalid')}"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the JSON error body."""

    async def cloacina_error(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.exception("request %s %s failed", request.method, request.url.path)
            return error_response(500, "internal", "the server failed to handle the request")
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        field = exc.field if isinstance(exc, RequestError) else None
        return error_response(status, code_of(exc), str(exc), headers, field)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        field, message = validation_message(exc)
        # The code of RequestError, which a client raises for it.
        return error_response(400, "request", message, field=field)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "authentication",
            403: "permission_denied",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else code.replace("_", " ")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
        return error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return error_response(500, "internal", "the server failed to handle the request")

    app.add_exception_handler(CloacinaError, cloacina_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


__all__ = ["code_of", "error_body", "error_response", "install", "status_of"]
