"""A server's JSON error body back into the :class:`~cloacina.errors.CloacinaError` it stands for.

The server answers ``{"error": {"code": "<snake_case>", "message": "..."}}`` with a status
of DESIGN §9. The code names the error class (``execution_not_found`` for
:class:`~cloacina.errors.ExecutionNotFoundError`, with or without the ``_error`` suffix), so
a caller of :class:`cloacina.Client` catches the same exceptions as a caller of
``DefaultRunner``. A code this version does not know falls back to the status's family
(404 :class:`~cloacina.errors.NotFoundError`, 409 :class:`~cloacina.errors.ConflictError`,
...), and a status without one to :class:`~cloacina.errors.RemoteError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cloacina import errors
from cloacina.errors import (
    AuthenticationError,
    CloacinaError,
    ConflictError,
    ContextError,
    NotFoundError,
    PackageError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RemoteError,
    RequestError,
    SettingsError,
    UnavailableError,
    WorkflowDefinitionError,
)

#: Per status, the classes a code may name (the server's families, DESIGN §9): a code
#: naming a class outside them is not trusted, the status decides.
ACCEPTED: dict[int, tuple[type[CloacinaError], ...]] = {
    400: (RequestError, ContextError, SettingsError),
    401: (AuthenticationError,),
    403: (PermissionDeniedError,),
    404: (NotFoundError,),
    409: (ConflictError,),
    413: (PayloadTooLargeError,),
    422: (PackageError, WorkflowDefinitionError),
    503: (UnavailableError,),
}

#: Per status, the class raised when the code names none of :data:`ACCEPTED` (other
#: statuses: :class:`~cloacina.errors.RemoteError`).
FAMILIES: dict[int, type[CloacinaError]] = {
    400: RequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _error_classes() -> dict[str, type[CloacinaError]]:
    found: dict[str, type[CloacinaError]] = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, CloacinaError):
            snake = _snake(value.__name__)
            found[snake] = value
            if snake.endswith("_error"):
                found.setdefault(snake[: -len("_error")], value)
    return found


#: Error code -> class, for every class of :mod:`cloacina.errors`.
BY_CODE: dict[str, type[CloacinaError]] = _error_classes()


def error_code(exc: BaseException) -> str:
    """The code a server gives ``exc``'s class (``ExecutionNotFoundError`` ->
    ``execution_not_found``); the inverse of :func:`error_class`'s lookup."""
    snake = _snake(type(exc).__name__)
    return snake[: -len("_error")] if snake.endswith("_error") else snake


def error_class(status: int, code: str) -> type[CloacinaError]:
    """The class to raise for an error answer of ``status`` with ``code``."""
    cls = BY_CODE.get(code)
    if cls is not None and issubclass(cls, ACCEPTED.get(status, ())):
        return cls
    return FAMILIES.get(status, RemoteError)


def _instance(cls: type[CloacinaError], message: str, field: str | None) -> CloacinaError:
    if issubclass(cls, RequestError):
        return cls(message, field=field)
    try:
        return cls(message)
    except TypeError:
        # A class whose constructor takes more than the message (it builds the message from
        # its parts): the server's message is the whole story, so keep it as it is.
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        return exc


def parse_error_body(body: bytes) -> tuple[str, str, str | None]:
    """``(code, message, field)`` of an error body; an empty code when it is not one."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return "", body.decode("utf-8", "replace").strip()[:500], None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        field = err.get("field")
        return (
            str(err.get("code") or ""),
            str(err.get("message") or ""),
            field if isinstance(field, str) else None,
        )
    if isinstance(doc, dict) and "detail" in doc:  # a framework's own error body
        return "", json.dumps(doc["detail"])[:500], None
    return "", json.dumps(doc)[:500], None


def from_response(status: int, body: bytes, what: str) -> CloacinaError:
    """The exception for an error answer: ``what`` (``GET /api/v1/...``) names the request
    when the server gave no message."""
    code, message, field = parse_error_body(body)
    if not message:
        message = f"the server answered {what} with HTTP {status}"
    cls = error_class(status, code)
    if cls is RemoteError:
        return RemoteError(message, status=status, code=code or f"http_{status}")
    return _instance(cls, message, field)
