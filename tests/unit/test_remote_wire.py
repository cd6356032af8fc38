"""The remote client's pieces without a server: error bodies back into CloacinaError classes,
Server-Sent Events read from lines, and the §9 JSON read back into the service's values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cloacina import errors
from cloacina.errors import (
    ApiKeyNotFoundError,
    AuthenticationError,
    CloacinaError,
    ConflictError,
    ExecutionNotFoundError,
    InvalidStateError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RemoteError,
    RequestError,
    UnavailableError,
    UnsafePackageError,
    WorkflowNameConflictError,
    WorkflowNotFoundError,
)
from cloacina.model.status import ExecutionStatus, TaskStatus
from cloacina.remote import decode
from cloacina.remote.errors import BY_CODE, error_code, from_response
from cloacina.remote.sse import parse_sse


def body(code: str, message: str = "the message") -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "execution_not_found", ExecutionNotFoundError),
        (404, "workflow_not_found", WorkflowNotFoundError),
        (404, "api_key_not_found", ApiKeyNotFoundError),
        (404, "not_found", NotFoundError),
        (404, "something_new", NotFoundError),
        (409, "invalid_state", InvalidStateError),
        (409, "workflow_name_conflict", WorkflowNameConflictError),
        (409, "conflict", ConflictError),
        (401, "authentication", AuthenticationError),
        (403, "permission_denied", PermissionDeniedError),
        (400, "invalid_request", RequestError),
        (400, "request", RequestError),
        (413, "payload_too_large", PayloadTooLargeError),
        (422, "unsafe_package", UnsafePackageError),
        (503, "store_unavailable", errors.StoreUnavailableError),
        (503, "runner_closed", UnavailableError),
    ],
)
def test_status_and_code_give_the_class(status: int, code: str, cls: type[Exception]) -> None:
    exc = from_response(status, body(code, "no workflow execution 'x'"), "GET /x")
    assert type(exc) is cls
    assert str(exc) == "no workflow execution 'x'"


def test_a_code_outside_the_status_family_is_not_trusted() -> None:
    # A 404 that names a conflict class: the status decides.
    assert type(from_response(404, body("invalid_state"), "GET /x")) is NotFoundError
    assert type(from_response(409, body("execution_not_found"), "GET /x")) is ConflictError


def test_other_statuses_are_remote_errors_with_status_and_code() -> None:
    exc = from_response(500, body("internal", "the server failed"), "GET /api/v1/x")
    assert isinstance(exc, RemoteError)
    assert (exc.status, exc.code, str(exc)) == (500, "internal", "the server failed")
    bare = from_response(502, b"<html>Bad gateway</html>", "GET /api/v1/x")
    assert isinstance(bare, RemoteError)
    assert bare.status == 502 and bare.code == "http_502"
    assert "Bad gateway" in str(bare)


def test_a_body_without_message_names_the_request() -> None:
    exc = from_response(404, b"", "GET /api/v1/executions/abc")
    assert isinstance(exc, NotFoundError)
    assert "GET /api/v1/executions/abc" in str(exc) and "404" in str(exc)


def test_codes_round_trip_for_every_error_class() -> None:
    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, CloacinaError)
    ]
    for cls in classes:
        instance = cls.__new__(cls)
        assert BY_CODE[error_code(instance)] is cls


def test_sse_events_from_lines() -> None:
    lines = [
        ": keep-alive",
        "id: 7",
        "event: task_started",
        'data: {"task_id": "a",',
        'data:  "attempt": 1}',
        "",
        "",
        "id: 8",
        "event: execution_completed",
        "data: {}",
        "",
        "event: cut",
        "data: {",  # cut off before its blank line: dropped
    ]
    events = list(parse_sse(lines))
    assert [(e.id, e.event) for e in events] == [
        ("7", "task_started"),
        ("8", "execution_completed"),
    ]
    assert events[0].json() == {"task_id": "a", "attempt": 1}
    assert events[1].json() == {}


def test_sse_keeps_the_last_id_and_defaults_the_type() -> None:
    events = list(parse_sse(["id: 3", "data: x", "", "data: y", ""]))
    assert [(e.id, e.event, e.data) for e in events] == [
        ("3", "message", "x"),
        ("3", "message", "y"),
    ]


def test_workflow_result_from_the_contract_fields() -> None:
    doc = {
        "execution_id": "e1",
        "workflow_name": "etl",
        "workflow_version": "v1",
        "status": "failed",
        "final_context": {"k": 1},
        "error": "boom",
        "started_at": "2026-03-01T10:00:00Z",
        "finished_at": "2026-03-01T10:00:01.500000Z",
        "tasks": {
            "a": {
                "status": "failed",
                "attempts": 3,
                "error": "boom",
                "started_at": "2026-03-01T10:00:00Z",
                "finished_at": None,
            }
        },
    }
    result = decode.workflow_result(doc)
    assert result.status is ExecutionStatus.FAILED
    assert result.duration == 1.5
    assert result.started_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    task = result.tasks["a"]
    assert (task.task_id, task.status, task.attempts, task.error) == (
        "a",
        TaskStatus.FAILED,
        3,
        "boom",
    )
    assert result.package == "embedded" and result.tenant == "public"


def test_times_are_formatted_in_utc_with_z() -> None:
    assert decode.format_time(0.0) == "1970-01-01T00:00:00Z"
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert decode.parse_time(decode.format_time(moment)) == moment
    assert decode.format_time(None) is None


@pytest.mark.parametrize("key", ["clk_secret\nInjected: 1", "clk_sécret", "clk_a b", "clk_\x00x"])
def test_a_key_no_header_can_carry_is_refused_without_echoing_it(key: str) -> None:
    from cloacina import Client

    with pytest.raises(errors.AuthenticationError) as caught:
        Client("http://127.0.0.1:1", api_key=key)
    assert key not in str(caught.value) and "secret" not in str(caught.value)


def test_a_key_around_whitespace_is_trimmed_and_never_in_repr() -> None:
    from cloacina import Client

    with Client("http://127.0.0.1:1", api_key="  clk_abcdef\n", tenant="acme") as client:
        assert "clk_abcdef" not in repr(client) and "acme" in repr(client)
        assert client._http.headers["authorization"] == "Bearer clk_abcdef"
