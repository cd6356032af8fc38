"""The administration methods of :class:`cloacina.Client`: API keys and the audit log
(``/api/v1/keys``, ``/api/v1/audit``, admin) and task logs (``.../tasks/{task}/logs``), with
``DefaultRunner``'s names, arguments and return types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

import httpx

from cloacina.errors import UnavailableError
from cloacina.model.status import WorkflowResult
from cloacina.remote import decode
from cloacina.service.audit import AuditEntry, AuditMixin, AuditPage, ExportFormat
from cloacina.service.keys import ApiKeyInfo, CreatedApiKey, Role
from cloacina.service.logs import TaskLog


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _items(doc: Any) -> list[Any]:
    items = doc.get("items") if isinstance(doc, dict) else doc
    return list(items) if isinstance(items, list) else []


class AdminClient:
    """A mixin of :class:`cloacina.Client` (which provides the transport below)."""

    _json: Callable[..., Any]
    _call: Callable[..., httpx.Response]
    _stream: Callable[..., AbstractContextManager[httpx.Response]]
    _unreachable: Callable[[str, str, httpx.TransportError], UnavailableError]
    get_execution: Callable[[str], WorkflowResult]

    # ---- API keys and the audit log (admin) -----------------------------------------------
    def create_api_key(
        self,
        name: str,
        role: Role | str,
        tenant: str | None = None,
        expires_in: float | timedelta | None = None,
    ) -> CreatedApiKey:
        """Make a key named ``name`` with ``role`` for ``tenant`` (``None``: every tenant),
        valid ``expires_in`` seconds (``None``: until revoked). The secret is in the result
        only: show it once."""
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        body = {
            "name": name,
            "role": str(role),
            "tenant": tenant,
            "expires_in_days": None if seconds is None else seconds / 86_400,
        }
        doc = self._json("POST", "/api/v1/keys", json=body)
        info_doc = doc.get("info") if isinstance(doc.get("info"), dict) else doc
        if "role" in info_doc:
            info = decode.api_key_info(info_doc)
        else:  # the contract's answer is only {"id", "key"}: the rest is in the list
            info = next(k for k in self.list_api_keys() if k.id == str(doc["id"]))
        return CreatedApiKey(id=str(doc["id"]), key=str(doc["key"]), info=info)

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """Every API key (never their secrets)."""
        return [decode.api_key_info(item) for item in _items(self._json("GET", "/api/v1/keys"))]

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key: it stops working at once."""
        self._call("DELETE", f"/api/v1/keys/{_seg(key_id)}")

    def list_audit(
        self,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        action: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
    ) -> AuditPage:
        """A page of the audit log, newest first (``action`` may end in ``*`` for a family,
        ``run.*``)."""
        params = {
            "since": decode.format_time(since),
            "until": decode.format_time(until),
            "action": action,
            "tenant": tenant,
            "limit": limit,
            "cursor": cursor,
            "actor": actor,
            "outcome": outcome,
        }
        return decode.audit_page(self._json("GET", "/api/v1/audit", params=params))

    def iter_audit(
        self,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        action: str | None = None,
        tenant: str | None = None,
        limit: int | None = None,
        actor: str | None = None,
        outcome: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Every matching entry, newest first (at most ``limit``), read page by page."""
        # The runner's own paging over list_audit, which is this client's.
        return AuditMixin.iter_audit(
            cast(Any, self),
            since=since,
            until=until,
            action=action,
            tenant=tenant,
            limit=limit,
            actor=actor,
            outcome=outcome,
        )

    def export_audit(
        self,
        format: ExportFormat = "jsonl",
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        action: str | None = None,
        tenant: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
    ) -> Iterator[str]:
        """The matching entries as text lines, newest first: ``jsonl`` or ``csv`` (the
        runner's format, from the server's pages)."""
        return AuditMixin.export_audit(
            cast(Any, self),
            format,
            since=since,
            until=until,
            action=action,
            tenant=tenant,
            actor=actor,
            outcome=outcome,
        )

    # ---- task logs ---------------------------------------------------------------------------
    def _logs_path(self, execution_id: str, task_id: str) -> str:
        return f"/api/v1/executions/{_seg(execution_id)}/tasks/{_seg(task_id)}/logs"

    def get_task_logs(self, execution_id: str, task_id: str, attempt: int | None = None) -> str:
        """What an attempt of a task wrote (stdout, stderr, logging), the latest attempt's
        by default."""
        path = self._logs_path(execution_id, task_id)
        response = self._call(
            "GET", path, params={"attempt": attempt}, headers={"Accept": "text/plain"}
        )
        return response.text

    def get_execution_logs(self, execution_id: str) -> list[TaskLog]:
        """The latest attempt's output of every task of a run that has started, in the
        run's task order (one request per task)."""
        result = self.get_execution(execution_id)
        return [
            TaskLog(task_id, t.attempts, self.get_task_logs(execution_id, task_id, t.attempts))
            for task_id, t in result.tasks.items()
            if t.attempts
        ]

    def follow_task_logs(
        self, execution_id: str, task_id: str, attempt: int | None = None
    ) -> Iterator[str]:
        """An attempt's output as it is written; ends when the attempt ends. The errors
        (an unknown run, task or attempt) are raised here, before the first piece."""
        path = self._logs_path(execution_id, task_id)
        params = {"attempt": attempt, "follow": "true"}
        stack = ExitStack()
        response = stack.enter_context(
            self._stream(path, params=params, headers={"Accept": "text/plain"})
        )

        def pieces() -> Iterator[str]:
            with stack:
                try:
                    yield from response.iter_text()
                except httpx.TransportError as exc:
                    raise self._unreachable("GET", path, exc) from None

        return pieces()
