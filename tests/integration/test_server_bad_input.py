"""Bad input to the HTTP API: every error is ``{"error": {"code", "message"}}`` with the
contract's status. Malformed JSON 400 naming the field, an oversized upload 413 before the
body is read (over real sockets), an unknown workflow 404 naming the nearest one, a package
that fails verification 422 with the reason, a stream of an unknown run 404."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cloacina import Context, task, workflow

from .server_support import live_server, running_api

pytestmark = pytest.mark.timeout(120)


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    return error


def test_malformed_requests_name_the_field(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("bad_input_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("x", 1)

    with running_api(db_url) as api:
        post = "/api/v1/executions"
        raw = {"Content-Type": "application/json"}
        error = error_of(api.call("POST", post, content=b'{"workflow": ', headers=raw), 400)
        assert error["field"] == "body" and "JSON" in error["message"]
        error = error_of(api.call("POST", post, json={"context": {}}), 400)
        assert error["field"] == "workflow" and "workflow" in error["message"]
        error = error_of(api.call("POST", post, json={"workflow": flow_name, "context": [1]}), 400)
        assert error["field"] == "context"
        error = error_of(api.call("POST", post, json=["not", "an", "object"]), 400)
        assert error["code"] == "request"
        error = error_of(api.call("GET", "/api/v1/executions", params={"limit": 0}), 400)
        assert error["field"] == "limit"
        error = error_of(api.call("GET", "/api/v1/executions", params={"since": "yesterday"}), 400)
        assert error["field"] == "since"
        error = error_of(api.call("GET", "/api/v1/executions", params={"status": "sleepy"}), 400)
        assert "sleepy" in error["message"]
        error = error_of(
            api.call("POST", "/api/v1/keys", json={"name": "k", "role": "superuser"}), 400
        )
        assert error["field"] == "role"
        error = error_of(api.call("POST", "/api/v1/keys", json={"role": "viewer"}), 400)
        assert error["field"] == "name"

        # Unknown workflow: 404 naming the nearest one.
        error = error_of(api.call("POST", post, json={"workflow": flow_name + "x"}), 404)
        assert error["code"] == "workflow_not_found" and flow_name in error["message"]
        error = error_of(api.call("GET", f"/api/v1/workflows/{flow_name}y", who="viewer"), 404)
        assert flow_name in error["message"]

        # Unknown runs, streams included.
        sse = {"Accept": "text/event-stream"}
        error = error_of(api.call("GET", "/api/v1/executions/nope/events", headers=sse), 404)
        assert error["code"] == "execution_not_found"
        error_of(api.call("GET", "/api/v1/executions/nope"), 404)
        error_of(api.call("POST", "/api/v1/executions/nope/pause"), 404)
        run = api.call("POST", post, json={"workflow": flow_name}).json()["execution_id"]
        bad_resume = {"Last-Event-ID": "seven", **sse}
        error = error_of(
            api.call("GET", f"/api/v1/executions/{run}/events", headers=bad_resume), 400
        )
        assert error["field"] == "Last-Event-ID"

        # Packages: garbage is refused with the reason; a bad signature header is a 400.
        octet = {"Content-Type": "application/octet-stream"}
        error = error_of(
            api.call("POST", "/api/v1/packages", content=b"garbage", headers=octet), 422
        )
        assert error["message"]
        signed = {**octet, "X-Cloacina-Signature": "%%% not base64"}
        error = error_of(api.call("POST", "/api/v1/packages", content=b"x", headers=signed), 400)
        assert error["field"] == "X-Cloacina-Signature"
        error_of(api.call("POST", "/api/v1/packages", content=b"", headers=octet), 400)
        error_of(api.call("DELETE", "/api/v1/packages/none/1.0"), 404)
        error_of(api.call("GET", "/api/v1/nothing/here"), 404)
        error_of(api.call("PUT", "/api/v1/executions"), 405)


def _raw_request(port: int, head: bytes, body_parts: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Send a request by hand; the status, the answer, and how many body bytes were sent
    before the server answered (it answers without waiting for the rest)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        answer = b""
        for part in body_parts:
            try:
                sock.sendall(part)
                sent += len(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if chunk:
                answer += chunk
                break
        sock.settimeout(5)
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, sent


def test_oversized_upload_413_before_the_body_is_read(sqlite_url: str) -> None:
    limit = 64 * 1024
    with live_server(sqlite_url, max_upload_bytes=limit) as live:
        key = live.api.keys["admin"]
        # Announced too large: refused on the headers, with no byte of the body sent.
        head = (
            "POST /api/v1/packages HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
        ).encode()
        status, answer, sent = _raw_request(live.port, head, iter([b""] * 20))
        assert status == 413, answer
        assert b'"payload_too_large"' in answer
        assert sent == 0

        # Chunked (no length): refused once past the limit, long before the end.
        def chunks() -> Iterator[bytes]:
            piece = b"x" * 16384
            for _ in range(3000):  # 48 MiB if all were sent
                yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                time.sleep(0.001)

        head = (
            "POST /api/v1/packages HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        status, answer, sent = _raw_request(live.port, head, chunks())
        assert status == 413, answer[:300]
        assert sent < 4 * 1024 * 1024, f"{sent} bytes went out before the 413"

        # Within the limit: read whole, then judged (not a package: 422).
        answer_ok = httpx.post(
            f"{live.base}/api/v1/packages",
            content=b"y" * 1000,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/octet-stream"},
        )
        assert answer_ok.status_code == 422


def test_unauthenticated_errors_are_json_and_never_echo_the_key(sqlite_url: str) -> None:
    with running_api(sqlite_url) as api:
        secret = "clk_" + "s" * 43
        answer = api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {secret}"})
        error = error_of(answer, 401)
        assert secret not in answer.text and "s" * 20 not in error["message"]
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        error = error_of(api.client.get("/api/v1/executions"), 401)
        assert "Authorization" in error["message"]
        error = error_of(
            api.client.get("/api/v1/executions", headers={"Authorization": "Basic abc"}), 401
        )
        assert answer.headers["X-Request-Id"]
