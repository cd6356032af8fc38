"""An engine's liveness: heartbeats, retention, stale-claim recovery and store errors.

Liveness is one heartbeat row per worker in ``workers``. Recovery takes back the running
tasks of workers whose heartbeat is older than the threshold, but only once this worker's
own heartbeats have reached the database for a full threshold (after an outage, every
worker's heartbeat is old), and never its own claims. When a cycle's write fails, the
outcomes are kept and retried with a back-off; when the database is there but refuses an
outcome, that task is recorded as failed instead of holding up every other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloacina.engine import alerts
from cloacina.engine.executor import FAILED, Outcome
from cloacina.engine.scheduler import Effects, Scheduler
from cloacina.errors import TaskError, UnavailableError
from cloacina.model.workflow import WorkflowCatalog
from cloacina.store.base import Store
from cloacina.store.records import Claim, NewEvent

if TYPE_CHECKING:
    from cloacina.engine.alert_delivery import AlertDeliverer
    from cloacina.engine.engine import EngineSettings
    from cloacina.observability.metrics import EngineMetrics

log = logging.getLogger("cloacina.engine")

#: Stopped or silent workers' rows are kept at least this long (seconds), whatever the
#: retention of runs.
WORKER_RETENTION_FLOOR = 86400.0


def storable_text(text: str | None) -> str | None:
    """Text every database stores: no NUL characters (PostgreSQL refuses them) and no lone
    surrogates (not UTF-8); both are written as escapes instead."""
    if text is None or (text.isascii() and "\x00" not in text):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _is_outage(exc: BaseException) -> bool:
    """Whether the database is unreachable or busy (retry as is), rather than refusing data.
    The stores raise :class:`UnavailableError` for that; a driver's OperationalError that
    reached us unwrapped means the same."""
    if isinstance(exc, UnavailableError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return True
    psycopg = sys.modules.get("psycopg")  # only loaded where PostgreSQL is used
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


class Liveness:
    """The liveness half of :class:`~cloacina.engine.engine.Engine` (a mixin: the engine
    provides the attributes declared here)."""

    store: Store
    catalog: WorkflowCatalog
    scheduler: Scheduler
    settings: EngineSettings
    worker_id: str
    tenant: str
    alerter: AlertDeliverer
    last_error: BaseException | None
    metrics: EngineMetrics | None
    _loop: asyncio.AbstractEventLoop
    _running: dict[str, Any]
    _outcomes: list[Outcome]
    _stopping: bool
    _heartbeat_stop: threading.Event
    _healthy_since: float | None
    _store_failures: int
    _one_at_a_time: bool
    _refusals: dict[str, int]
    _next_code_check: float
    _waiting_for_code: set[str]
    _warned_for_code: set[str]
    _orphans: list[Claim]
    _request_cycle: Callable[..., None]
    _now: Callable[[], float]
    _notify_finished: Callable[[list[tuple[str, str]]], None]

    def _recovery_interval(self) -> float:
        return max(0.05, min(self.settings.stale_claim_threshold / 2, 2.0))

    def _heartbeat_loop(self) -> None:
        """On a thread of its own, so a slow or unreachable database never stalls the loop:
        refresh our row in ``workers`` (the liveness of every claim we hold: one row per
        worker, which no other transaction locks)."""
        interval = self.settings.heartbeat_interval
        while not self._heartbeat_stop.wait(interval):
            try:
                self.store.worker_heartbeat(self.worker_id, time.time(), len(self._running))
            except Exception as exc:  # the database may be briefly unavailable
                if self._healthy_since is not None:
                    log.warning("heartbeat failed (will retry): %s", exc)
                self._healthy_since = None
            else:
                if self._healthy_since is None:
                    self._healthy_since = time.monotonic()

    def _prune_loop(self) -> None:
        """Remove finished runs past the retention period, on a thread of its own (a large
        backlog takes a while and must not hold up heartbeats)."""
        retention = self.settings.retention
        assert retention is not None
        pause = min(max(retention / 10, 1.0), 3600.0)
        while True:
            try:
                cutoff = time.time() - retention
                pruned = self.store.prune_executions(cutoff)
                if pruned:
                    log.info("pruned %d finished runs older than %.0fs", pruned, retention)
                # Delivered and given-up alerts go with the runs of their time.
                self.store.prune_alerts(cutoff)
                # Workers: gone for a day at least, however short the retention, so that a
                # live but slow worker never loses its row.
                gone = max(retention, WORKER_RETENTION_FLOOR)
                forgotten = self.store.prune_workers(time.time() - gone)
                if forgotten:
                    log.info("forgot %d workers gone for over %.0fs", forgotten, gone)
            except Exception as exc:
                log.warning("pruning old runs failed: %s", exc)
            if self._heartbeat_stop.wait(pause):
                return

    def _recovery_tick(self) -> None:
        if self._stopping:
            return
        try:
            self._recover_stale()
        except Exception as exc:
            log.warning("stale-claim recovery failed: %s", exc)
        try:
            self._watch_deadlines_and_workers()
        except Exception as exc:
            log.warning("looking for late runs and lost workers failed: %s", exc)
        now = time.monotonic()
        if now >= self._next_code_check:
            self._next_code_check = now + self._code_check_interval()
            try:
                self._watch_for_missing_code()
            except Exception as exc:
                log.warning("looking for runs of unknown versions failed: %s", exc)
        self._loop.call_later(self._recovery_interval(), self._recovery_tick)

    def _code_check_interval(self) -> float:
        return max(1.0, min(10.0, 20 * self.settings.poll_interval))

    def _watch_for_missing_code(self) -> None:
        """Say (once per run) when a run of a workflow this worker knows by name waits on a
        version of it whose code no worker here holds: after an edit of the code, say, the
        run would otherwise wait forever without a word."""
        known = self.catalog.all_versions()
        waiting = self.store.runs_waiting_for_code(
            sorted({wf.name for wf in known}), [(wf.name, wf.version) for wf in known]
        )
        seen = {eid for eid, _name, _version in waiting}
        for eid, name, version in waiting:
            # Seen at two checks in a row: not a version another worker is about to pick up.
            if eid in self._waiting_for_code and eid not in self._warned_for_code:
                self._warned_for_code.add(eid)
                log.warning(
                    "execution %s of workflow %r waits for version %s, whose code this worker "
                    "does not have (it knows versions %s); run a worker with that code, or "
                    "cancel the run with `cloacina executions cancel %s`",
                    eid,
                    name,
                    version[:12],
                    ", ".join(sorted(wf.version[:12] for wf in known if wf.name == name)),
                    eid,
                )
        self._waiting_for_code = seen
        self._warned_for_code &= seen  # runs that ended (or got their code) are forgotten

    def _on_store_error(self, exc: BaseException, outcomes: list[Outcome]) -> None:
        """Keep the outcomes and try again after a back-off: the database may come back.
        If it is there but refuses the data, find the outcome it refuses and record that
        task as failed instead, so that one bad outcome cannot hold up every other."""
        self.last_error = exc
        self._store_failures += 1
        delay = min(5.0, 0.05 * 2 ** min(self._store_failures - 1, 7))
        if self._store_failures in (1, 5) or delay >= 5.0:
            log.error("database error, retrying in %.2fs: %s", delay, exc)
        if outcomes and not _is_outage(exc):
            if len(outcomes) > 1:
                self._one_at_a_time = True
                delay = 0.0
            else:
                instead = self._refused(outcomes[0], exc)
                outcomes = [] if instead is None else [instead]
        self._outcomes[:0] = outcomes
        self._loop.call_later(delay, self._request_cycle, True)

    def _refused(self, outcome: Outcome, exc: BaseException) -> Outcome | None:
        """The database refused to record this outcome (twice): record a failure instead,
        then a failure with nothing of the task's text in it; if it refuses even that, hand
        the claim back (and say so) rather than leave it 'running' behind our heartbeat."""
        token = outcome.claim.claim_token
        strikes = self._refusals[token] = self._refusals.get(token, 0) + 1
        if strikes < 2:
            return outcome
        task = outcome.claim.task_id
        if strikes <= 3:
            if strikes == 2:
                message = storable_text(
                    f"the outcome of task {task!r} could not be stored: {type(exc).__name__}: {exc}"
                )
            else:
                message = "the outcome of this task could not be stored (see the worker's log)"
            log.error("%s; recording the task as failed", message)
            return Outcome(
                outcome.claim,
                FAILED,
                error=message,
                exc=TaskError(message or "", retryable=False),
                finished_at=outcome.finished_at or time.time(),
            )
        log.error(
            "giving up recording task %s of execution %s: the database refuses it (%s); "
            "handing the task back",
            task,
            outcome.claim.execution_id,
            exc,
        )
        self._refusals.pop(token, None)
        self._orphans.append(outcome.claim)
        return None

    def _recover_stale(self) -> None:
        healthy = self._healthy_since
        threshold = self.settings.stale_claim_threshold
        if healthy is None or time.monotonic() - healthy < threshold:
            # After an outage every worker's heartbeats are old: give them a full threshold
            # to come back before taking their tasks.
            return
        now = time.time()
        stale = [s for s in self.store.find_stale(threshold) if s.claim_token not in self._running]
        if not stale:
            return
        fx = Effects()
        with self.store.write() as tx:
            tx.lock_runs(sorted({item.execution_id for item in stale}))
            for item in stale:
                wf = self.catalog.find(item.workflow_name, item.workflow_version)
                if wf is None:
                    continue  # a worker that knows this workflow will recover it
                if item.recovery_count >= self.settings.max_recoveries:
                    error = (
                        f"task {item.task_id!r} was abandoned: its worker stopped responding "
                        f"{item.recovery_count + 1} times (max_recoveries="
                        f"{self.settings.max_recoveries})"
                    )
                    if tx.fail_stale(item, error, now, threshold):
                        fx.alerts.append(
                            alerts.task_recovered(
                                self.tenant,
                                item.execution_id,
                                item.workflow_name,
                                item.task_id,
                                item.attempt,
                                item.recovery_count,
                                "failed",
                                error,
                                now,
                            )
                        )
                        fx.events.append(
                            NewEvent(
                                item.execution_id,
                                item.task_id,
                                "task_abandoned",
                                item.attempt,
                                json.dumps({"error": error}),
                                now,
                            )
                        )
                        if item.task_id.endswith("]"):  # an instance of a mapped task
                            self.scheduler.fanout.abandoned(
                                tx, wf, item.execution_id, item.row_id, now, fx
                            )
                        else:
                            self.scheduler.settle(
                                tx, wf, item.execution_id, [(item.task_id, FAILED)], now, fx
                            )
                elif tx.requeue_stale(item, threshold):
                    log.warning(
                        "recovered task %s of execution %s from a worker that stopped responding",
                        item.task_id,
                        item.execution_id,
                    )
                    fx.alerts.append(
                        alerts.task_recovered(
                            self.tenant,
                            item.execution_id,
                            item.workflow_name,
                            item.task_id,
                            item.attempt,
                            item.recovery_count + 1,
                            "requeued",
                            None,
                            now,
                        )
                    )
                    fx.events.append(
                        NewEvent(
                            item.execution_id,
                            item.task_id,
                            "task_recovered",
                            item.attempt,
                            json.dumps({"recovery": item.recovery_count + 1}),
                            now,
                        )
                    )
            if fx.ready:
                tx.mark_ready([r.row_id for r in fx.ready])
            tx.enqueue_alerts(alerts.outbox_items(fx.alerts), now)
            tx.add_events(fx.events)
        if self.metrics is not None:
            names = {item.execution_id: item.workflow_name for item in stale}
            self.metrics.record(fx.events, now, ready=fx.ready, names=names)
        if fx.alerts:
            self.alerter.raised(fx.alerts)
        if fx.finished_runs:
            self._notify_finished(fx.finished_runs)
        self._request_cycle(True)

    def _watch_deadlines_and_workers(self) -> None:
        """Report runs past their deadline and workers whose heartbeat stopped: each marked
        in the database by the statement that finds it, so that one worker alone reports
        it, in the transaction that puts its alert in the outbox. A cheap read first: an
        idle worker must not take the write lock every tick."""
        now = self._now()  # deadlines were set by the runner's clock
        threshold = self.settings.stale_claim_threshold
        healthy = self._healthy_since
        # After an outage every worker's heartbeat is old: as for recovery, wait a full
        # threshold of our own heartbeats before calling another worker lost.
        judge_workers = healthy is not None and time.monotonic() - healthy >= threshold
        late = self.store.has_late_runs(now)
        lost = judge_workers and self.store.has_lost_workers(threshold, self.worker_id)
        if not late and not lost:
            return
        raised: list[alerts.Alert] = []
        with self.store.write() as tx:
            if late:
                for run in tx.mark_late_runs(now):
                    log.warning(
                        "execution %s of workflow %r is past its deadline",
                        run.id,
                        run.workflow_name,
                    )
                    raised.append(alerts.run_deadline(self.tenant, run, now))
            if lost:
                for worker in tx.mark_lost_workers(threshold, self.worker_id):
                    log.warning(
                        "worker %s on %s (pid %d) was lost: no heartbeat for over %gs",
                        worker.id,
                        worker.host,
                        worker.pid,
                        threshold,
                    )
                    raised.append(alerts.worker_lost(self.tenant, worker, threshold, now))
            tx.enqueue_alerts(alerts.outbox_items(raised), now)
        if raised:
            self.alerter.raised(raised)
