"""``cloacina.Client``: a Cloacina server's HTTP API with ``DefaultRunner``'s method names.

::

    from cloacina import Client

    with Client("http://127.0.0.1:8080", api_key="...") as runner:   # was DefaultRunner(url)
        result = runner.execute("etl", {"day": "2026-03-01"})
        print(result.status, result.final_context)

The same methods return the same values (``WorkflowResult``, ``ExecutionPage``, ...) and
raise the same :class:`~cloacina.errors.CloacinaError` subclasses (the server's JSON error
body names the class), so code moves between embedded and remote by changing one line.
One pool of keep-alive connections serves every call (the client is safe to share between
threads). :meth:`Client.wait` follows the run's event stream (Server-Sent Events) instead of
polling, then reads the result. The API key is sent as a bearer token and never logged,
shown in ``repr`` or put in an error message. Needs the ``client`` extra (``httpx``).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from cloacina._about import __version__
from cloacina.async_twins import AsyncTwins
from cloacina.errors import (
    AuthenticationError,
    ExecutionTimeoutError,
    RemoteError,
    RequestError,
    RunnerClosedError,
    UnavailableError,
)
from cloacina.model.context import Context, as_context_dict
from cloacina.model.status import TERMINAL_EXECUTION, ExecutionStatus, WorkflowResult
from cloacina.remote import decode
from cloacina.remote.admin import AdminClient
from cloacina.remote.errors import from_response
from cloacina.remote.schedules import ScheduleClient
from cloacina.remote.sse import SseEvent, parse_sse
from cloacina.remote.triggers import TriggerClient
from cloacina.service.backfills import Backfill
from cloacina.service.stats import WorkflowStats
from cloacina.service.types import (
    ExecutionEvent,
    ExecutionPage,
    PackageDetail,
    TaskAttempt,
    WorkerInfo,
    WorkflowInfo,
)

if TYPE_CHECKING:
    from cloacina.registry.registry import PackageInfo

#: The environment variable an API key is read from when none is given.
API_KEY_ENV = "CLOACINA_API_KEY"
#: The header that picks a tenant for a key that serves all of them.
TENANT_HEADER = "X-Cloacina-Tenant"
#: The most runs one page of the execution list holds (DESIGN §9).
MAX_PAGE = 500
#: Seconds a stream followed with a deadline may stay silent before it is opened again.
SILENCE = 2.0
#: The events that end a run's stream.
TERMINAL_EVENTS = frozenset(f"execution_{status}" for status in TERMINAL_EXECUTION)

ContextArg = Context | Mapping[str, Any] | None


def _workflow_name(name: str | type | Any) -> str:
    if isinstance(name, str):
        return name
    from cloacina.model.workflow import workflow_of

    return workflow_of(name).name


def _seg(value: str) -> str:
    """One path segment, quoted (a package version may hold ``+``, a task id ``/``)."""
    return quote(str(value), safe="")


def _items(doc: Any) -> list[Any]:
    """A list answer: ``{"items": [...]}`` (DESIGN §9) or a bare list."""
    if isinstance(doc, list):
        return doc
    items = doc.get("items") if isinstance(doc, dict) else None
    return list(items) if isinstance(items, list) else []


class Client(AdminClient, ScheduleClient, TriggerClient, AsyncTwins):
    """A Cloacina server's API (``cloacina serve``) with the methods of ``DefaultRunner``.

    ``url`` is the server's base URL (``http://host:8080``); ``api_key`` defaults to the
    ``CLOACINA_API_KEY`` variable; ``tenant`` picks a tenant for a key that serves every
    tenant (a key bound to one tenant acts in it; asking for another is refused);
    ``timeout`` bounds each request in seconds (a :meth:`wait` or a followed log waits as
    long as it is told to). A closed client raises
    :class:`~cloacina.errors.RunnerClosedError`; a server that cannot be reached,
    :class:`~cloacina.errors.UnavailableError`.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        tenant: str | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.tenant = tenant
        self.timeout = timeout
        key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV) or "").strip()
        if key and not (key.isascii() and key.isprintable() and " " not in key):
            # Said without the key: it must never reach a message or a log.
            raise AuthenticationError(
                "the API key holds characters no key has (spaces, control or non-ASCII "
                f"characters); check the value given (or ${API_KEY_ENV})"
            )
        headers = {"User-Agent": f"cloacina-client/{__version__}", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if tenant:
            headers[TENANT_HEADER] = tenant
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            # No cap: every thread waiting on a run holds a stream; keep-alive for 64 idle.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            verify=verify,
        )
        self._closed = False

    def __repr__(self) -> str:  # never the key
        tenant = f", tenant={self.tenant!r}" if self.tenant else ""
        return f"Client({self.url!r}{tenant})"

    # ---- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections. Idempotent."""
        if not self._closed:
            self._closed = True
            self._http.close()

    def shutdown(self, wait: bool = True) -> None:
        """``DefaultRunner``'s name for :meth:`close` (a remote client has no tasks to wait
        for: the server's runs go on)."""
        self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- transport ---------------------------------------------------------------------------
    def _unreachable(self, method: str, path: str, exc: httpx.TransportError) -> UnavailableError:
        if isinstance(exc, httpx.TimeoutException):
            return UnavailableError(
                f"the Cloacina server at {self.url} did not answer {method} {path} in time "
                f"({type(exc).__name__}); retry, or raise the client's timeout"
            )
        # A protocol error's text may quote a header, the key's among them: only its kind.
        detail = "" if isinstance(exc, httpx.ProtocolError) else f": {exc}"
        return UnavailableError(
            f"cannot reach the Cloacina server at {self.url} ({type(exc).__name__}{detail}); "
            "check the URL and that `cloacina serve` is running there"
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if self._closed:
            raise RunnerClosedError("this Client was closed; create a new one")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, params=query or None, json=json, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from None
        if response.status_code >= 400:
            raise from_response(response.status_code, response.content, f"{method} {path}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"the server answered {method} {path} with a body that is not JSON; is "
                f"{self.url} a Cloacina server?",
                status=response.status_code,
                code="bad_response",
            ) from None

    @contextmanager
    def _stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> Iterator[httpx.Response]:
        """A streamed GET (events, followed logs): ``read_timeout`` bounds each wait for
        data (``None``: as long as it takes). Opening it raises the mapped errors; reading
        it may raise httpx's own (a timeout, a connection cut), for the caller to judge."""
        if self._closed:
            raise RunnerClosedError("this Client was closed; create a new one")
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        with ExitStack() as stack:
            try:
                response = stack.enter_context(
                    self._http.stream(
                        "GET", path, params=query or None, headers=headers, timeout=timeout
                    )
                )
                if response.status_code >= 400:
                    response.read()
            except httpx.TransportError as exc:
                raise self._unreachable("GET", path, exc) from None
            if response.status_code >= 400:
                raise from_response(response.status_code, response.content, f"GET {path}")
            yield response

    # ---- running -----------------------------------------------------------------------------
    def schedule_workflow(
        self,
        name: str | type | Any,
        context: ContextArg = None,
        *,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run of workflow ``name`` on the server; its execution id, at once.
        ``idempotency_key``: the same key again returns the same run."""
        body = {"workflow": _workflow_name(name), "context": as_context_dict(context)}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        doc = self._json("POST", "/api/v1/executions", json=body, headers=headers)
        return str(doc["execution_id"])

    def execute(
        self,
        name: str | type | Any,
        context: ContextArg = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowResult:
        """Run workflow ``name`` and block until it ends; its :class:`WorkflowResult`."""
        run = self.schedule_workflow(name, context, idempotency_key=idempotency_key)
        return self.wait(run, timeout)

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult:
        """Block until the run ends (or ``timeout`` seconds pass: ExecutionTimeoutError),
        following its event stream; then its :class:`WorkflowResult`. A stream cut short
        (a restarted server, a proxy) is resumed after the last event seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            ended: dict[str, Any] | None = None
            try:
                for event, carried in self._follow(execution_id, after, deadline):
                    after, ended = event.seq, carried
            except ExecutionTimeoutError:
                result = self.get_execution(execution_id)
                if result.status.is_terminal:
                    return result
                raise ExecutionTimeoutError(
                    f"workflow execution {execution_id} is still {result.status} after "
                    f"{timeout or 0:g}s; wait again, or cancel it with client.cancel()"
                ) from None
            # The server sends the run with its terminal event: no need to ask again.
            result = decode.workflow_result(ended) if ended else self.get_execution(execution_id)
            if result.status.is_terminal:
                return result
            # Ended, and then started again (a rerun) before this read: follow on.

    def _follow(
        self, execution_id: str, after: int, deadline: float | None
    ) -> Iterator[tuple[ExecutionEvent, dict[str, Any] | None]]:
        """The run's events after ``after`` from its stream, until its terminal event, each
        with the run the server sent beside the terminal event (its ``result``: else None);
        ExecutionTimeoutError at ``deadline`` (a monotonic time). A stream that ends or is
        cut before the terminal event is opened again after the last event seen; while a
        deadline is set, one silent for :data:`SILENCE` seconds is too (so the deadline is
        kept to within that, whatever the socket does)."""
        path = f"/api/v1/executions/{_seg(execution_id)}/events"
        pause = 0.05
        asked_again = False
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ExecutionTimeoutError(f"workflow execution {execution_id} did not end")
            headers = {"Accept": "text/event-stream"}
            if after:
                headers["Last-Event-ID"] = str(after)
            silence = None if left is None else min(left, SILENCE)
            try:
                with self._stream(path, headers=headers, read_timeout=silence) as response:
                    for sse in parse_sse(response.iter_lines()):
                        event, result = _event(execution_id, sse)
                        after = max(after, event.seq)
                        yield event, result
                        if event.type in TERMINAL_EVENTS:
                            return
            except httpx.TimeoutException:
                continue  # silent for a while: the deadline is checked, the stream reopened
            except httpx.TransportError:
                pass  # cut: the run's state decides
            if self.get_execution_status(execution_id).is_terminal:
                if asked_again:
                    return  # no terminal event to read
                asked_again = True  # ended meanwhile: the history has the rest, at once
                continue
            left = None if deadline is None else deadline - time.monotonic()
            time.sleep(pause if left is None else max(0.0, min(pause, left)))
            pause = min(pause * 2, 1.0)

    # ---- reading runs ------------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> WorkflowResult:
        """The current state of a run (finished or not), with its tasks and contexts."""
        return decode.workflow_result(self._json("GET", f"/api/v1/executions/{_seg(execution_id)}"))

    def get_execution_status(self, execution_id: str) -> ExecutionStatus:
        """A run's status alone."""
        return self.get_execution(execution_id).status

    def find_execution(self, id_or_prefix: str) -> WorkflowResult:
        """The run with this id, or the only one whose id starts with it (the short ids a
        list shows). ExecutionNotFoundError for none, RequestError for a prefix that several
        runs share (it names some)."""
        ident = id_or_prefix.strip()
        if not ident:
            raise RequestError("give an execution id (or a unique prefix of one)")
        # The server resolves the prefix, with the same query and messages as in process.
        doc = self._json("GET", f"/api/v1/executions/{_seg(ident)}?match=prefix")
        return decode.workflow_result(doc)

    def list_executions_page(
        self,
        *,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """One page of runs, newest first, as summaries; the filters of
        ``DefaultRunner.list_executions_page`` (``limit`` 1 to 500)."""
        params = {
            "status": None if status is None else str(status),
            "workflow": workflow_name or None,
            "since": decode.format_time(since),
            "until": decode.format_time(until),
            "q": q or None,
            "limit": limit,
            "cursor": cursor,
        }
        return decode.execution_page(self._json("GET", "/api/v1/executions", params=params))

    def list_executions(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        q: str | None = None,
        cursor: str | None = None,
    ) -> list[WorkflowResult]:
        """Recent runs, newest first, without per-task detail: the items of
        :meth:`list_executions_page` (the same filters; ``limit`` 1 to 500)."""
        return self.list_executions_page(
            status=status,
            workflow_name=workflow_name,
            since=since,
            until=until,
            q=q,
            limit=limit,
            cursor=cursor,
        ).items

    def get_attempts(self, execution_id: str) -> list[TaskAttempt]:
        """Every attempt of every task of the run (those under way last)."""
        doc = self._json("GET", f"/api/v1/executions/{_seg(execution_id)}/attempts")
        return [decode.task_attempt(item) for item in _items(doc)]

    def get_events(
        self, execution_id: str, after: int = 0, limit: int | None = None
    ) -> list[ExecutionEvent]:
        """The run's events after sequence number ``after``, oldest first (at most
        ``limit``): those stored now, read as JSON (the stream's own history, without
        following it)."""
        doc = self._json(
            "GET",
            f"/api/v1/executions/{_seg(execution_id)}/events",
            params={"after": after or None, "limit": limit},
        )
        events = [decode.execution_event(item) for item in _items(doc)]
        return events if limit is None else events[: max(0, limit)]

    def stream_events(
        self, execution_id: str, after: int = 0, timeout: float | None = None
    ) -> Iterator[ExecutionEvent]:
        """The run's events as they happen (after sequence number ``after``: its history
        first), from its event stream; ends after the run's terminal event. When
        ``timeout`` seconds pass first: ExecutionTimeoutError. Opening it raises the
        errors (an unknown run) before the first event."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.get_execution_status(execution_id)  # an unknown run: raised here, at once
        return (event for event, _ in self._follow(execution_id, after, deadline))

    # ---- control -----------------------------------------------------------------------------
    def cancel(self, execution_id: str, *, reason: str | None = None) -> None:
        """Cancel a run (InvalidStateError if it already ended)."""
        body = {"reason": reason} if reason else None
        self._call("POST", f"/api/v1/executions/{_seg(execution_id)}/cancel", json=body)

    def rerun(
        self,
        execution_id: str,
        tasks: Sequence[str] | None = None,
        *,
        downstream: bool = True,
        context: ContextArg = None,
        version: str | None = None,
    ) -> None:
        """Run again tasks of a run that ended (DESIGN §11; as ``DefaultRunner.rerun``)."""
        body: dict[str, Any] = {"tasks": None if tasks is None else list(tasks)}
        body["downstream"] = downstream
        body["context"] = None if context is None else as_context_dict(context)
        body["version"] = version
        self._call("POST", f"/api/v1/executions/{_seg(execution_id)}/rerun", json=body)

    def rerun_failed(
        self, workflow: str | None = None, since: datetime | timedelta | float | None = None
    ) -> list[str]:
        """Rerun the failed runs of ``workflow`` created since ``since``; the ids rerun."""
        if isinstance(since, timedelta):
            since = time.time() - since.total_seconds()
        when = since.isoformat() if isinstance(since, datetime) else since
        body = {"workflow": workflow, "since": None if when is None else str(when)}
        doc = self._json("POST", "/api/v1/executions/rerun-failed", json=body)
        return [str(eid) for eid in doc["items"]]

    def pause(self, execution_id: str) -> None:
        """Stop starting new tasks of a run; running ones finish."""
        self._call("POST", f"/api/v1/executions/{_seg(execution_id)}/pause")

    def resume(self, execution_id: str) -> None:
        """Continue a paused run."""
        self._call("POST", f"/api/v1/executions/{_seg(execution_id)}/resume")

    # ---- packages and workflows --------------------------------------------------------------
    def register_workflow(
        self, package_bytes: bytes, signature: bytes | None = None, *, replace: bool = False
    ) -> str:
        """Upload a ``.cloacina`` package (its bytes, and its detached signature if any);
        its package id. Identical bytes again return the same id."""
        headers = {"Content-Type": "application/octet-stream"}
        if signature is not None:
            headers["X-Cloacina-Signature"] = base64.b64encode(signature).decode("ascii")
        doc = self._json(
            "POST",
            "/api/v1/packages",
            content=bytes(package_bytes),
            headers=headers,
            params={"replace": "true" if replace else None},
        )
        return str(doc["package_id"])

    def unregister_workflow(self, name: str, version: str) -> None:
        """Remove version ``version`` of package ``name`` (refused while runs of it are
        unfinished)."""
        self._call("DELETE", f"/api/v1/packages/{_seg(name)}/{_seg(version)}")

    def list_packages(self) -> list[PackageInfo]:
        """The registered packages, oldest first."""
        return [decode.package_info(item) for item in _items(self._json("GET", "/api/v1/packages"))]

    def get_package(self, name: str, version: str) -> PackageDetail:
        """One registered package version with its manifest."""
        doc = self._json("GET", f"/api/v1/packages/{_seg(name)}/{_seg(version)}")
        return decode.package_detail(doc)

    def get_package_archive(self, name: str, version: str) -> bytes:
        """The ``.cloacina`` archive of a registered package version, as registered."""
        path = f"/api/v1/packages/{_seg(name)}/{_seg(version)}/archive"
        return self._call("GET", path, headers={"Accept": "application/octet-stream"}).content

    def describe_workflows(self) -> list[WorkflowInfo]:
        """The workflows the server can execute, with their graphs."""
        return [
            decode.workflow_info(item) for item in _items(self._json("GET", "/api/v1/workflows"))
        ]

    def list_workflows(self) -> list[WorkflowInfo]:
        """The workflows the server can execute. Remote, a workflow is its description and
        graph (:class:`WorkflowInfo`), not its code: the same as :meth:`describe_workflows`."""
        return self.describe_workflows()

    def describe_workflow(self, name: str) -> WorkflowInfo:
        """One workflow by name, with its graph (WorkflowNotFoundError names the nearest)."""
        return decode.workflow_info(self._json("GET", f"/api/v1/workflows/{_seg(name)}"))

    def workflow_stats(self, name: str, last: int = 100) -> WorkflowStats:
        """Per task p50/p95 duration and queue wait, failure rate and the critical path of
        the ``last`` finished runs of workflow ``name``."""
        doc = self._json("GET", f"/api/v1/workflows/{_seg(name)}/stats", params={"last": last})
        return WorkflowStats.from_dict(doc)

    # ---- workers -----------------------------------------------------------------------------
    def list_workers(self, include_stopped: bool = False) -> list[WorkerInfo]:
        """The workers of the tenant (stopped ones too with ``include_stopped``)."""
        params = {"include_stopped": "true" if include_stopped else None}
        doc = self._json("GET", "/api/v1/workers", params=params)
        return [decode.worker_info(item) for item in _items(doc)]

    # ---- backfills ---------------------------------------------------------------------------
    def backfill(
        self,
        workflow: str | type | Any,
        start: datetime | float | int | str,
        end: datetime | float | int | str,
        *,
        cron: str | None = None,
        only_missing: bool = True,
        max_parallel: int = 4,
        context: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        force: bool = False,
    ) -> str:
        """Start a backfill of ``workflow`` for every time of ``cron`` from ``start`` to
        ``end``; its id (see ``DefaultRunner.backfill``)."""

        def when(value: datetime | float | int | str) -> str | float:
            return value.isoformat() if isinstance(value, datetime) else value

        body = {
            "workflow": _workflow_name(workflow),
            "start": when(start),
            "end": when(end),
            "cron": cron,
            "only_missing": only_missing,
            "max_parallel": max_parallel,
            "context": as_context_dict(context) if context else {},
            "timezone": timezone,
            "force": force,
        }
        return str(self._json("POST", "/api/v1/backfills", json=body)["id"])

    def list_backfills(self, limit: int = 100) -> list[Backfill]:
        """Backfills, newest first, with their progress."""
        doc = self._json("GET", "/api/v1/backfills", params={"limit": limit})
        return [Backfill.from_dict(item) for item in _items(doc)]

    def get_backfill(self, backfill_id: str) -> Backfill:
        """One backfill (by id or a unique prefix) with its progress."""
        return Backfill.from_dict(self._json("GET", f"/api/v1/backfills/{_seg(backfill_id)}"))

    def pause_backfill(self, backfill_id: str) -> None:
        """Make no new runs for a backfill until it is resumed."""
        self._call("POST", f"/api/v1/backfills/{_seg(backfill_id)}/pause")

    def resume_backfill(self, backfill_id: str) -> None:
        """Go on making a paused backfill's runs."""
        self._call("POST", f"/api/v1/backfills/{_seg(backfill_id)}/resume")

    def cancel_backfill(self, backfill_id: str) -> int:
        """Stop a backfill and cancel its unfinished runs; how many were cancelled."""
        doc = self._json("POST", f"/api/v1/backfills/{_seg(backfill_id)}/cancel")
        return int(doc.get("cancelled_runs", 0))

    # ---- metrics -----------------------------------------------------------------------------
    def metrics_text(self) -> bytes:
        """The server's metrics in Prometheus text format."""
        return self._call("GET", "/metrics", headers={"Accept": "text/plain"}).content


def _event(execution_id: str, event: SseEvent) -> tuple[ExecutionEvent, dict[str, Any] | None]:
    """An SSE event as an :class:`ExecutionEvent`, and the run its data carries (``result``,
    beside a terminal event) if any."""
    data = event.json()
    doc = data if isinstance(data, dict) else {"detail": data}
    doc.setdefault("execution_id", execution_id)
    result = doc.pop("result", None)
    seq = int(event.id) if event.id and event.id.isdigit() else None
    event_value = decode.execution_event(doc, seq=seq, kind=event.event)
    return event_value, result if isinstance(result, dict) else None


__all__ = ["API_KEY_ENV", "TENANT_HEADER", "Client"]
