"""Alerting for every face: channels (webhooks), their test, the delivery log, and Python
callbacks for embedded use.

``runner.add_alert_channel("ops", "https://hooks.example/cloacina")`` sends the alerts of
every rule (:data:`~cloacina.engine.alerts.RULES`: ``run_failed``, ``run_deadline``,
``worker_lost``, ``task_recovered``) to that URL, signed with the channel's secret (made
here when none is given, and shown only in the channel this call returns).
``runner.on_alert(fn)`` calls ``fn(alert)`` with each :class:`Alert` this runner raises.
No list, log line or error ever holds a channel's secret.
"""

from __future__ import annotations

import re
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.engine.alert_delivery import AlertCallback, signature, verify_signature
from cloacina.engine.alerts import RULES, Alert, test_alert
from cloacina.errors import ConflictError, NotFoundError, RequestError
from cloacina.model.status import to_datetime
from cloacina.service.audit import Described, audited
from cloacina.store.alerts import ChannelRow, DeliveryRow, OutboxRow

if TYPE_CHECKING:
    from cloacina.engine.engine import Engine
    from cloacina.store.base import Store

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
#: The most rows one listing returns.
MAX_LIST = 1000
#: A secret given by hand must be at least this long (a generated one is 43 characters).
MIN_SECRET = 16


@dataclass(frozen=True)
class AlertChannel:
    """Where alerts go. ``secret`` is only set in the value :meth:`AlertService.
    add_alert_channel` returns (it is shown once); listings never carry it."""

    id: str
    name: str
    kind: str
    url: str
    rules: tuple[str, ...]
    workflow: str | None
    enabled: bool
    created_at: datetime | None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AlertDelivery:
    """One attempt to deliver an alert to a channel."""

    id: int
    alert_id: int  # the alert's row in the outbox
    channel_id: str
    channel: str
    rule: str
    attempt: int
    at: datetime | None
    worker_id: str | None
    status_code: int | None
    error: str | None
    duration: float | None
    #: The alert's state now: pending, sending, delivered or failed.
    alert_status: str


@dataclass(frozen=True)
class QueuedAlert:
    """An alert in a channel's outbox, with its state."""

    id: int
    channel_id: str
    channel: str
    rule: str
    status: str
    attempts: int
    created_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    payload: str


@dataclass(frozen=True)
class AlertTestResult:
    """What a channel's test did: the alert was queued, and (when this process tried to
    deliver it) how the attempt went."""

    alert_id: str
    outbox_id: int
    attempted: bool
    delivered: bool
    status_code: int | None = None
    error: str | None = None


def display_url(url: str) -> str:
    """A webhook's URL as shown: without a password in it."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(
            f"invalid webhook URL {display_url(url)!r}: give an http:// or https:// URL with "
            "a host, e.g. https://hooks.example.com/cloacina"
        )
    return url


def check_rules(rules: Iterable[str] | str | None) -> tuple[str, ...]:
    if rules is None:
        return RULES
    if isinstance(rules, str):
        rules = [r for r in re.split(r"[,\s]+", rules) if r]
    chosen = tuple(dict.fromkeys(str(r).strip() for r in rules))
    if not chosen:
        raise RequestError(f"a channel needs at least one rule; the rules are: {', '.join(RULES)}")
    unknown = [r for r in chosen if r not in RULES]
    if unknown:
        raise RequestError(f"unknown alert rule {unknown[0]!r}; the rules are: {', '.join(RULES)}")
    return chosen


def _channel(row: ChannelRow, secret: str | None = None) -> AlertChannel:
    return AlertChannel(
        id=row.id,
        name=row.name,
        kind=row.kind,
        url=display_url(row.url),
        rules=row.rules,
        workflow=row.workflow,
        enabled=row.enabled,
        created_at=to_datetime(row.created_at),
        secret=secret,
    )


def _delivery(row: DeliveryRow) -> AlertDelivery:
    return AlertDelivery(
        id=row.id,
        alert_id=row.outbox_id,
        channel_id=row.channel_id,
        channel=row.channel_name,
        rule=row.rule,
        attempt=row.attempt,
        at=to_datetime(row.at),
        worker_id=row.worker_id,
        status_code=row.status_code,
        error=row.error,
        duration=row.duration,
        alert_status=row.alert_status,
    )


def _queued(row: OutboxRow) -> QueuedAlert:
    return QueuedAlert(
        id=row.id,
        channel_id=row.channel_id,
        channel=row.channel_name,
        rule=row.rule,
        status=row.status,
        attempts=row.attempts,
        created_at=to_datetime(row.created_at),
        next_attempt_at=to_datetime(row.next_attempt_at),
        delivered_at=to_datetime(row.delivered_at),
        last_error=row.last_error,
        payload=row.payload,
    )


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
        raise RequestError(f"limit must be a whole number from 1 to {MAX_LIST}, not {limit!r}")
    return limit


# ---- what the audit log says (never the secret) ---------------------------------------------
def _describe_add(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    detail = {
        "url": display_url(str(args.get("url", ""))),
        "rules": list(check_rules_quietly(args.get("rules"))),
        "workflow": args.get("workflow"),
    }
    return f"alert channel {args.get('name')}", detail


def _describe_channel(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    return f"alert channel {args.get('id_or_name')}", None


def check_rules_quietly(rules: Any) -> tuple[str, ...]:
    try:
        return check_rules(rules)
    except RequestError:
        return ()


class AlertService:
    """Alerting (a mixin of :class:`~cloacina.runner.DefaultRunner`)."""

    store: Store
    tenant: str
    _engine: Engine

    def on_alert(self, callback: AlertCallback) -> None:
        """Call ``callback(alert)`` with every :class:`Alert` this runner raises (a run of
        it failed, a deadline passed, a worker was lost, a task was recovered), once each,
        after the change is committed, on a thread of the runner's own; an exception it
        raises is logged, never raised. Only a runner that executes tasks raises alerts."""
        if not callable(callback):
            raise RequestError(f"on_alert takes a function of one alert, not {callback!r}")
        self._engine.alerter.on_alert(callback)

    @audited("alert_channel.add", _describe_add)
    def add_alert_channel(
        self,
        name: str,
        url: str,
        *,
        rules: Iterable[str] | str | None = None,
        workflow: str | None = None,
        secret: str | None = None,
        enabled: bool = True,
    ) -> AlertChannel:
        """Send alerts to the webhook at ``url``: those of ``rules`` (default: every rule),
        of one ``workflow`` only when given. Each is POSTed as JSON, signed with ``secret``
        (made here when none is given; the returned channel carries it, and nothing shows
        it again). A name already taken is a :class:`~cloacina.errors.ConflictError`."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise RequestError(
                f"invalid alert channel name {name!r}: use up to 128 letters, digits, '_', "
                "'.' and '-', starting with a letter, digit or '_'"
            )
        url = check_url(url)
        chosen = check_rules(rules)
        if workflow is not None and not (isinstance(workflow, str) and workflow.strip()):
            raise RequestError("workflow must be a workflow's name, or None for every workflow")
        if secret is None:
            secret = secrets.token_urlsafe(32)
        elif not isinstance(secret, str) or len(secret) < MIN_SECRET:
            raise RequestError(
                f"a channel's secret must be at least {MIN_SECRET} characters; leave it out to "
                "have one made"
            )
        row = ChannelRow(
            id=str(uuid.uuid4()),
            name=name,
            kind="webhook",
            url=url,
            rules=chosen,
            workflow=workflow,
            enabled=bool(enabled),
            created_at=time.time(),
            secret=secret,
        )
        if not self.store.insert_alert_channel(row):
            raise ConflictError(
                f"an alert channel named {name!r} exists already; remove it first "
                f"(cloacina alerts remove {name}) or choose another name"
            )
        return _channel(row, secret)

    def list_alert_channels(self) -> list[AlertChannel]:
        """The alert channels, by name (never their secrets)."""
        return [_channel(row) for row in self.store.list_alert_channels()]

    def get_alert_channel(self, id_or_name: str) -> AlertChannel:
        """The channel with this id or name (:class:`~cloacina.errors.NotFoundError`)."""
        return _channel(self._find_channel(id_or_name))

    def _find_channel(self, id_or_name: str, *, with_secret: bool = False) -> ChannelRow:
        row = self.store.find_alert_channel(str(id_or_name), with_secret=with_secret)
        if row is None:
            names = [c.name for c in self.store.list_alert_channels()]
            known = f"; the channels are: {', '.join(names)}" if names else "; there is none"
            raise NotFoundError(f"no alert channel {id_or_name!r}{known}")
        return row

    @audited("alert_channel.remove", _describe_channel)
    def remove_alert_channel(self, id_or_name: str) -> None:
        """Remove a channel, with its queued alerts and their delivery log."""
        row = self._find_channel(id_or_name)
        if not self.store.delete_alert_channel(row.id):
            raise NotFoundError(f"no alert channel {id_or_name!r} (removed meanwhile)")

    @audited("alert_channel.test", _describe_channel)
    def test_alert_channel(self, id_or_name: str, *, deliver: bool = True) -> AlertTestResult:
        """Queue a test alert for this channel alone and, with ``deliver``, try to deliver it
        from this process at once (otherwise, or when a worker took it first, a worker
        delivers it)."""
        row = self._find_channel(id_or_name)
        alert = test_alert(self.tenant, row.name, time.time())
        outbox_id = self.store.enqueue_channel_alert(row.id, alert.outbox_item(), alert.at)
        if outbox_id is None:
            raise NotFoundError(f"no alert channel {id_or_name!r} (removed meanwhile)")
        if not deliver:
            return AlertTestResult(alert.id, outbox_id, attempted=False, delivered=False)
        results = self._engine.alerter.deliver_due(outbox_id)
        if not results:  # a worker claimed it first
            return AlertTestResult(alert.id, outbox_id, attempted=False, delivered=False)
        result = results[0]
        return AlertTestResult(
            alert.id,
            outbox_id,
            attempted=True,
            delivered=result.status == "delivered",
            status_code=result.status_code,
            error=result.error,
        )

    def list_alert_deliveries(self, limit: int = 50) -> list[AlertDelivery]:
        """The latest attempts to deliver alerts, newest first."""
        return [_delivery(row) for row in self.store.list_alert_deliveries(_limit(limit))]

    def list_alerts(self, limit: int = 50, status: str | None = None) -> list[QueuedAlert]:
        """Alerts in the outbox, newest first (``status``: pending, sending, delivered or
        failed)."""
        if status is not None and status not in ("pending", "sending", "delivered", "failed"):
            raise RequestError(
                f"unknown alert status {status!r}: pending, sending, delivered or failed"
            )
        return [_queued(row) for row in self.store.list_alert_outbox(_limit(limit), status)]


__all__ = [
    "RULES",
    "Alert",
    "AlertChannel",
    "AlertDelivery",
    "AlertService",
    "AlertTestResult",
    "QueuedAlert",
    "display_url",
    "signature",
    "verify_signature",
]
