"""Delivering alerts: webhooks from the outbox, and the runner's Python callbacks.

Every engine that executes tasks delivers on threads of its own, so a webhook that hangs or
refuses never slows a task: one thread claims due alerts from the outbox (any process's,
one at a time, for a lease) and POSTs them; another calls the runner's callbacks with the
alerts this engine raised. A webhook gets the alert's JSON with
``X-Cloacina-Signature: sha256=<hex HMAC-SHA256 of the body with the channel's secret>``,
``X-Cloacina-Alert-Id`` and ``X-Cloacina-Timestamp``; a 2xx answer delivers it, anything
else (or no answer within ``alert_timeout``) is retried with an exponential back-off up to
``alert_max_attempts`` times. Every attempt is logged in ``alert_deliveries``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from cloacina._about import __version__
from cloacina.engine.alerts import Alert
from cloacina.settings import Settings
from cloacina.store.alerts import ClaimedAlert
from cloacina.store.base import Store

log = logging.getLogger("cloacina.alerts")

#: The longest back-off between two attempts (seconds).
MAX_RETRY_DELAY = 3600.0
#: How much of a webhook's answer is read (and kept, cut, as the error of a failed attempt).
MAX_ANSWER = 512

AlertCallback = Callable[[Alert], object]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Cloacina-Signature`` header of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` with ``secret`` (constant time): what
    a receiver does."""
    return hmac.compare_digest(signature(secret, body), header)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is answered as a failure: urllib would resend a POST as a
    GET without its body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt to deliver an alert went."""

    outbox_id: int
    channel: str
    attempt: int
    status: str  # delivered, pending (to be retried) or failed (gave up)
    status_code: int | None
    error: str | None
    duration: float


def post_webhook(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """POST ``body``: ``(status code or None, error or None)``; the error is None for 2xx.
    A user and password in the URL are sent as HTTP basic authentication (urllib would take
    them for part of the host, and put them in its errors)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        login = f"{urllib.parse.unquote(parts.username or '')}:"
        login += urllib.parse.unquote(parts.password or "")
        headers = {**headers, "Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read(MAX_ANSWER)
            code = int(answer.status)
    except urllib.error.HTTPError as exc:
        text = ""
        try:
            text = exc.read(MAX_ANSWER).decode("utf-8", "replace").strip()
        except Exception:  # the answer's body is a courtesy
            pass
        detail = f": {text[:200]}" if text else ""
        return exc.code, f"HTTP {exc.code} {exc.reason}{detail}"
    except TimeoutError:
        return None, f"no answer within {timeout:g}s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return None, f"no answer within {timeout:g}s"
        return None, f"could not reach the webhook: {reason}"
    except (OSError, ValueError) as exc:  # a reset connection, a malformed answer
        return None, f"could not reach the webhook: {type(exc).__name__}: {exc}"
    if 200 <= code < 300:
        return code, None
    return code, f"HTTP {code}"


class AlertDeliverer:
    """Delivers the outbox's alerts and calls the callbacks, each on a thread of its own."""

    def __init__(self, store: Store, worker_id: str, settings: Settings) -> None:
        self.store = store
        self.worker_id = worker_id
        self.settings = settings
        self._callbacks: list[AlertCallback] = []
        self._raised: queue.SimpleQueue[list[Alert] | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Alerts raised here since the last look at the outbox: a stopping engine (a
        # `cloacina run` that just failed) still sends them before it goes.
        self._raised_here = False
        self._threads: list[threading.Thread] = []

    @property
    def interval(self) -> float:
        """How often the outbox is looked at when nothing here raised an alert."""
        return min(max(self.settings.poll_interval * 2, 0.1), 1.0)

    @property
    def lease(self) -> float:
        """How long a claim keeps an alert from the other deliverers: an attempt's timeout
        with room to spare; past it, a claim whose holder died is taken over."""
        return self.settings.alert_timeout * 2 + 10.0

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in (
            (self._deliver_loop, "cloacina-alerts"),
            (self._callback_loop, "cloacina-alert-callbacks"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop, after one last attempt at the alerts raised here (bounded by
        ``alert_timeout``; an attempt under way finishes, so that what was sent is recorded
        and not sent again by another worker) and the callbacks of those raised already."""
        self._stop.set()
        self._wake.set()
        self._raised.put(None)
        for thread in self._threads:
            thread.join(self.settings.alert_timeout * 2 + 2.0)
        self._threads.clear()

    # ---- raised here -------------------------------------------------------------------------
    def on_alert(self, callback: AlertCallback) -> None:
        """Call ``callback(alert)`` for every alert this engine raises, after its commit."""
        self._callbacks.append(callback)

    def raised(self, alerts: list[Alert]) -> None:
        """Alerts this engine just committed: call the callbacks, and look at the outbox now
        (they are likely there)."""
        if self._callbacks:
            self._raised.put(alerts)
        self._raised_here = True
        self._wake.set()

    def _callback_loop(self) -> None:
        while True:
            alerts = self._raised.get()
            if alerts is None:
                return
            for alert in alerts:
                for callback in list(self._callbacks):
                    try:
                        callback(alert)
                    except Exception:
                        log.exception("alert callback %r failed on alert %s", callback, alert.id)

    # ---- the outbox --------------------------------------------------------------------------
    def _deliver_loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            last = self._stop.is_set()
            if last and not self._raised_here:
                return
            try:
                self.deliver_due()
            except Exception as exc:  # the database may be briefly unavailable
                log.warning("delivering alerts failed (will retry): %s", exc)
            if last:
                return

    def deliver_due(self, outbox_id: int | None = None) -> list[AttemptResult]:
        """Claim due alerts one at a time and try each (just the one with ``outbox_id``, if
        it is due, when given); what each attempt did. Once stopping, no new claim after
        one ``alert_timeout``'s worth of time: a shutdown stays bounded."""
        results: list[AttemptResult] = []
        self._raised_here = False
        if outbox_id is None and not self.store.alerts_due(time.time()):
            return results
        stop_by: float | None = None
        while True:
            if self._stop.is_set():
                stop_by = stop_by or time.monotonic() + self.settings.alert_timeout
                if time.monotonic() >= stop_by:
                    break
            claimed = self.store.claim_alerts(
                self.worker_id, time.time(), self.lease, limit=1, outbox_id=outbox_id
            )
            if not claimed:
                break
            for alert in claimed:
                results.append(self.attempt(alert))
            if outbox_id is not None:
                break
        return results

    def attempt(self, alert: ClaimedAlert) -> AttemptResult:
        """POST one claimed alert and record how it went."""
        body = alert.payload.encode()
        try:
            alert_id = str(json.loads(alert.payload).get("id", alert.id))
        except (ValueError, AttributeError):
            alert_id = str(alert.id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"cloacina/{__version__}",
            "X-Cloacina-Alert-Id": alert_id,
            "X-Cloacina-Timestamp": str(int(time.time())),
            "X-Cloacina-Signature": signature(alert.secret, body),
        }
        started = time.monotonic()
        code, error = post_webhook(alert.url, body, headers, self.settings.alert_timeout)
        duration = time.monotonic() - started
        now = time.time()
        if error is None:
            status, next_at = "delivered", now
        elif alert.attempt >= self.settings.alert_max_attempts:
            status, next_at = "failed", now
        else:
            delay = self.settings.alert_retry_delay * 2 ** (alert.attempt - 1)
            status, next_at = "pending", now + min(delay, MAX_RETRY_DELAY)
        if error is not None:
            log.warning(
                "alert %s to channel %r, attempt %d: %s%s",
                alert_id,
                alert.channel_name,
                alert.attempt,
                error,
                "; giving up" if status == "failed" else "",
            )
        held = self.store.record_alert_attempt(
            alert,
            self.worker_id,
            status=status,
            now=now,
            next_attempt_at=next_at,
            status_code=code,
            error=error,
            duration=duration,
        )
        if not held:
            log.warning(
                "alert %s to channel %r: another worker took it over while this attempt ran",
                alert_id,
                alert.channel_name,
            )
        return AttemptResult(
            alert.id, alert.channel_name, alert.attempt, status, code, error, duration
        )
