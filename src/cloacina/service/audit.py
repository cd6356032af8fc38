"""The audit log: who changed what, when, where from, and how it went.

A face (the CLI, the HTTP server) says who acts with :func:`acting_as` (a context variable,
so it follows a request into worker threads and ``asyncio.to_thread``); every change the
runner makes while an actor is set is recorded with outcome ``ok`` or the error's message.
Without an actor (a program embedding the runner) nothing is recorded and nothing is
slower. Rows live in the default tenant's database and can only be added: database
triggers refuse UPDATE and DELETE, and no face offers either.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import getpass
import inspect
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from cloacina.errors import RequestError
from cloacina.model.status import to_datetime
from cloacina.service.control import ControlStoreMixin
from cloacina.store.audit import AuditRow

if TYPE_CHECKING:
    from cloacina.store import Store

log = logging.getLogger("cloacina.audit")

#: The longest texts the table keeps (longer ones are cut).
_LIMITS = {
    "actor": 255,
    "tenant": 64,
    "action": 64,
    "target": 512,
    "client": 128,
    "request_id": 64,
    "outcome": 4000,
}
#: Most rows one page of :meth:`AuditMixin.list_audit` returns.
MAX_PAGE = 1000
#: The columns of an export, in order (CSV header, JSON keys).
EXPORT_FIELDS = (
    "id",
    "at",
    "actor",
    "key_id",
    "tenant",
    "action",
    "target",
    "outcome",
    "client",
    "request_id",
    "detail",
)

ExportFormat = Literal["jsonl", "csv"]


def os_user() -> str:
    """The name of the user running this process (``unknown`` if it has none)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name, no $USER (a container's numeric uid)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class Actor:
    """Who acts: ``name`` is ``key:<id> (<name>)`` for an API key or ``local:<os user>`` for
    direct access to the database; ``client`` the address it came from; ``request_id``
    ties the row to the request's log lines."""

    name: str
    key_id: str | None = None
    client: str | None = None
    request_id: str | None = None

    @classmethod
    def local(cls, client: str | None = None, request_id: str | None = None) -> Actor:
        """The user of this process, acting on the database directly (the CLI)."""
        return cls(f"local:{os_user()}", None, client, request_id)

    @classmethod
    def for_key(
        cls,
        key_id: str,
        key_name: str,
        client: str | None = None,
        request_id: str | None = None,
    ) -> Actor:
        """The holder of API key ``key_id`` (named ``key_name``)."""
        return cls(f"key:{key_id} ({key_name})", key_id, client, request_id)


_ACTOR: ContextVar[Actor | None] = ContextVar("cloacina_actor", default=None)


def current_actor() -> Actor | None:
    """Who acts in this context (``None``: nobody said; nothing is audited)."""
    return _ACTOR.get()


def set_actor(actor: Actor | None) -> Token[Actor | None]:
    """Set the actor of this context; undo with :func:`reset_actor` (for middleware that
    cannot wrap a ``with`` block around the request)."""
    return _ACTOR.set(actor)


def reset_actor(token: Token[Actor | None]) -> None:
    _ACTOR.reset(token)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[Actor | None]:
    """Changes made in the block are audited as ``actor``'s."""
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log. ``outcome`` is ``ok`` or the error's message; ``tenant``
    the tenant changed (``None``: not one tenant's, e.g. a key for every tenant)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    tenant: str | None = None
    key_id: str | None = None
    client: str | None = None
    request_id: str | None = None
    detail: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON values (``at`` in ISO 8601 UTC with ``Z``), the fields of
        :data:`EXPORT_FIELDS`: the HTTP API's item and the export's line."""
        return {
            "id": self.id,
            "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "key_id": self.key_id,
            "tenant": self.tenant,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client": self.client,
            "request_id": self.request_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first; ``next_cursor`` fetches the next (older)
    page, ``None`` on the last."""

    items: list[AuditEntry]
    next_cursor: str | None = None


def _entry(row: AuditRow) -> AuditEntry:
    detail: dict[str, Any] | None = None
    if row.detail:
        try:
            loaded = json.loads(row.detail)
            detail = loaded if isinstance(loaded, dict) else {"value": loaded}
        except ValueError:
            detail = {"text": row.detail}
    at = to_datetime(row.at)
    assert at is not None
    return AuditEntry(
        id=row.id,
        at=at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        tenant=row.tenant,
        key_id=row.key_id,
        client=row.client,
        request_id=row.request_id,
        detail=detail,
    )


def encode_cursor(at: float, row_id: int) -> str:
    raw = json.dumps([at, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """The ``(at, id)`` an audit cursor stands for; a :class:`RequestError` naming
    ``cursor`` if it is not one this module made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or type(row_id) is not int:
            raise ValueError(cursor)
        return float(at), row_id
    except (ValueError, TypeError, binascii.Error):
        raise RequestError(
            f"invalid audit cursor {cursor[:40]!r}: pass the next_cursor of the previous page",
            field="cursor",
        ) from None


def _epoch(value: float | datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else value


def _cut(field: str, value: str | None) -> str | None:
    limit = _LIMITS[field]
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def outcome_of(exc: BaseException) -> str:
    """The outcome recorded for a change that raised ``exc``: its message (or its type)."""
    return str(exc) or type(exc).__name__


#: Set by an audited method that wrote its own success row inside its change's transaction
#: (the change and its audit row commit together, in one write): the decorator then adds none.
_RECORDED_INLINE: ContextVar[bool] = ContextVar("cloacina_audit_recorded_inline", default=False)


def audit_row(
    action: str,
    target: str,
    outcome: str,
    *,
    tenant: str | None,
    detail: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> AuditRow:
    """The row :func:`append_audit` appends (by ``actor``, by default the current one, else
    the local OS user)."""
    who = actor or current_actor() or Actor.local()
    return AuditRow(
        id=0,
        at=time.time(),
        actor=_cut("actor", who.name) or "",
        key_id=who.key_id,
        tenant=_cut("tenant", tenant),
        action=_cut("action", action) or "",
        target=_cut("target", target) or "",
        outcome=_cut("outcome", outcome) or "",
        client=_cut("client", who.client),
        request_id=_cut("request_id", who.request_id),
        detail=json.dumps(detail, separators=(",", ":"), default=str) if detail else None,
    )


def recorded_inline() -> None:
    """Say that the running audited method wrote its success row itself, in its change's
    own transaction (see :func:`audited`)."""
    _RECORDED_INLINE.set(True)


def append_audit(
    store: Store,
    action: str,
    target: str,
    outcome: str,
    *,
    tenant: str | None,
    detail: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> None:
    """Append a row to the audit log of ``store`` (the default tenant's), by ``actor`` (by
    default the current one, else the local OS user)."""
    store.insert_audit(
        audit_row(action, target, outcome, tenant=tenant, detail=detail, actor=actor)
    )


class AuditMixin(ControlStoreMixin):
    """Recording and reading the audit log, on :class:`~cloacina.runner.DefaultRunner`."""

    def record_audit(
        self,
        action: str,
        target: str,
        outcome: str = "ok",
        *,
        tenant: str | None = "",
        detail: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> None:
        """Append a row: ``action`` (``run.cancel``, ``package.register``...) on ``target``
        by ``actor`` (default: the current one, else the local OS user), with ``outcome``
        ``ok`` or an error message. ``tenant`` defaults to this runner's (``None``: not one
        tenant's)."""
        append_audit(
            self.control_store,
            action,
            target,
            outcome,
            tenant=self.tenant if tenant == "" else tenant,
            detail=detail,
            actor=actor,
        )

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
        """A page of the audit log, newest first. ``since``/``until`` (epoch seconds or
        datetimes) bound the time; ``action`` is one action (``run.cancel``) or a family
        ending in ``*`` (``run.*``); ``tenant`` keeps one tenant's rows; ``actor`` keeps the
        rows whose actor contains it; ``outcome`` is ``ok`` or ``failed`` (any error);
        ``limit`` is 1..1000; ``cursor`` is the ``next_cursor`` of the page before."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise RequestError(f"limit must be 1..{MAX_PAGE}, not {limit!r}", field="limit")
        if outcome not in (None, "ok", "failed"):
            raise RequestError(f"outcome must be ok or failed, not {outcome!r}", field="outcome")
        exact, prefix = action, None
        if action is not None and action.endswith("*"):
            exact, prefix = None, action.rstrip("*")
        rows = self.control_store.list_audit(
            limit=limit + 1,
            since=_epoch(since),
            until=_epoch(until),
            action=exact or None,
            action_prefix=prefix or None,
            tenant=tenant,
            before=decode_cursor(cursor) if cursor else None,
            actor=actor or None,
            ok=None if outcome is None else outcome == "ok",
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].at, rows[-1].id) if more and rows else None
        return AuditPage([_entry(r) for r in rows], next_cursor)

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
        cursor: str | None = None
        left = limit
        # Passed on only when given: the remote client's list_audit reuses this paging.
        more = {k: v for k, v in (("actor", actor), ("outcome", outcome)) if v is not None}
        while left is None or left > 0:
            size = MAX_PAGE if left is None else min(MAX_PAGE, left)
            page = self.list_audit(
                since=since,
                until=until,
                action=action,
                tenant=tenant,
                limit=size,
                cursor=cursor,
                **more,
            )
            yield from page.items
            if left is not None:
                left -= len(page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

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
        """The matching entries as text, newest first, line by line (each ends with a
        newline): ``jsonl`` (one JSON object per line, :meth:`AuditEntry.to_dict`) or
        ``csv`` (a header line, then :data:`EXPORT_FIELDS`; ``detail`` as JSON text).
        The filters are :meth:`list_audit`'s."""
        if format not in ("jsonl", "csv"):
            raise RequestError(
                f"unknown audit export format {format!r}: use jsonl or csv", field="format"
            )
        entries = self.iter_audit(
            since=since, until=until, action=action, tenant=tenant, actor=actor, outcome=outcome
        )
        if format == "jsonl":
            for entry in entries:
                yield json.dumps(entry.to_dict(), ensure_ascii=False) + "\n"
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

        def line(values: list[Any]) -> str:
            writer.writerow(values)
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        yield line(list(EXPORT_FIELDS))
        for entry in entries:
            data = entry.to_dict()
            if data["detail"] is not None:
                data["detail"] = json.dumps(data["detail"], ensure_ascii=False)
            yield line(["" if data[f] is None else data[f] for f in EXPORT_FIELDS])


F = TypeVar("F", bound=Callable[..., Any])

#: What an audited method's describer returns: the target and an optional detail.
Described = tuple[str, dict[str, Any] | None]
#: ``describe(runner, result, arguments)``: the call's arguments by parameter name;
#: ``result`` is ``None`` when the call failed.
Describer = Callable[[Any, Any, dict[str, Any]], Described]


def audited(action: str, describe: Describer) -> Callable[[F], F]:
    """Record a row for each call of the decorated runner method while an actor is set:
    outcome ``ok``, or the error's message (the error still propagates). Without an actor
    the method is called as it is (one context-variable read)."""

    def wrap(method: F) -> F:
        signature = inspect.signature(method)

        def arguments(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind_partial(self, *args, **kwargs)
            bound.apply_defaults()
            return dict(bound.arguments)

        @functools.wraps(method)
        def inner(self: AuditMixin, *args: Any, **kwargs: Any) -> Any:
            if _ACTOR.get() is None:
                return method(self, *args, **kwargs)
            inline = _RECORDED_INLINE.set(False)
            try:
                result = method(self, *args, **kwargs)
                if _RECORDED_INLINE.get():
                    return result  # its row committed with the change
            except Exception as exc:
                if _RECORDED_INLINE.get():
                    raise  # the change committed with its row; what failed after is not it
                try:
                    target, detail = describe(self, None, arguments(self, args, kwargs))
                    self.record_audit(action, target, outcome_of(exc), detail=detail)
                except Exception as audit_exc:  # the change's own error matters more
                    log.error("could not audit a failed %s: %s", action, audit_exc)
                raise
            finally:
                _RECORDED_INLINE.reset(inline)
            target, detail = describe(self, result, arguments(self, args, kwargs))
            self.record_audit(action, target, "ok", detail=detail)
            return result

        return cast(F, inner)

    return wrap


@contextmanager
def audit_change(
    url: str, action: str, target: str, *, tenant: str | None, detail: dict[str, Any] | None = None
) -> Iterator[None]:
    """Audit the change made in the block on the database at ``url`` (for service functions
    that work on a database without a runner, e.g. creating a tenant), when an actor is
    set: the row goes to the default tenant's store, opened for it."""
    if _ACTOR.get() is None:
        yield
        return
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = outcome_of(exc)
        raise
    finally:
        try:
            _record_at(url, action, target, outcome, tenant=tenant, detail=detail)
        except Exception as audit_exc:
            if outcome == "ok":
                raise
            log.error("could not audit a failed %s: %s", action, audit_exc)


def _record_at(
    url: str,
    action: str,
    target: str,
    outcome: str,
    *,
    tenant: str | None,
    detail: dict[str, Any] | None,
) -> None:
    from cloacina.model.namespace import DEFAULT_TENANT
    from cloacina.store import open_store

    store = open_store(url, tenant=DEFAULT_TENANT)
    try:
        append_audit(store, action, target, outcome, tenant=tenant, detail=detail)
    finally:
        store.close()
