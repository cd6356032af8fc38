"""Pacing backfills: make a backfill's runs a few at a time, exactly once across runners.

Every runner that executes tasks paces the backfills that are ``running`` (nothing to start
or configure), on a thread of its own so that the engine's loop never waits for it. A step
claims a backfill's row in a write transaction (see :mod:`cloacina.store.backfills`), makes
runs for its next scheduled times while fewer than ``max_parallel`` of its runs are
unfinished, moves its cursor past them and commits: a time becomes one run however many
runners pace the backfill. A backfill whose times all have runs, all ended, is finished.

Backfill runs carry :data:`BACKFILL_PRIORITY`, below a fresh run's 0: the engine's claims
take a fresh run's ready tasks first, so a backfill never delays a scheduled or submitted
run. Steps come when this runner's runs end, when a backfill is made here, and on a timer
(for backfills made, and runs ended, in other processes).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from cloacina.model.context import dumps_context
from cloacina.model.cron import CronSpec
from cloacina.model.workflow import Workflow, WorkflowCatalog
from cloacina.store.backfills import UNFINISHED
from cloacina.store.base import Store, WriteTx
from cloacina.store.records import NewEvent, NewTask, RunOrigin

log = logging.getLogger("cloacina.engine")

#: The priority of a backfill's runs (and their tasks); fresh runs have 0.
BACKFILL_PRIORITY = -10
#: Scheduled times looked at per query when skipping times that have a run already.
BATCH = 200
#: Seconds between two steps at least.
MIN_GAP = 0.02
#: Times looked at in one step at most (only-missing backfills over mostly done ranges):
#: the row lock is held briefly, and the next step goes on from the cursor.
MAX_SCAN = 5000


def scheduled_time_text(t: float, timezone: str) -> str:
    """A scheduled time as its runs' contexts hold it: ISO-8601 in the backfill's zone."""
    return datetime.fromtimestamp(t, ZoneInfo(timezone)).isoformat()


class BackfillPacer:
    """Makes the runs of running backfills, ``max_parallel`` at a time."""

    def __init__(
        self,
        store: Store,
        catalog: WorkflowCatalog,
        tenant: str,
        now: Callable[[], float],
        on_created: Callable[[Sequence[tuple[str, str]]], None],
        interval: float,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.tenant = tenant
        self._now = now
        self._on_created = on_created  # (execution id, input JSON) of runs just committed
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active = False  # running backfills were seen at the last look
        self._specs: dict[tuple[str, str], list[NewTask]] = {}
        self._thread = threading.Thread(target=self._loop, name="cloacina-backfills", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def poke(self) -> None:
        """Look at the backfills now (one was made or resumed here)."""
        self._active = True
        self._wake.set()

    def runs_finished(self) -> None:
        """Runs of this runner ended: a backfill may have a free slot (cheap when there is
        no backfill: a flag)."""
        if self._active:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception as exc:  # the database may be briefly unavailable
                log.warning("pacing backfills failed (will retry): %s", exc)
            # Wake-ups that came meanwhile are folded into the next step, at most one per
            # MIN_GAP: a busy engine's cycles must not keep this thread (and the GIL) busy.
            self._stop.wait(MIN_GAP)

    def step(self) -> int:
        """Pace every running backfill once; how many runs were made."""
        running = self.store.running_backfills()
        self._active = bool(running)
        made = 0
        for backfill_id, due in running:
            if self._stop.is_set():
                break
            if due:  # else nothing to do: no write transaction (no write lock on SQLite)
                made += len(self.pace(backfill_id))
        return made

    def pace(self, backfill_id: str) -> list[str]:
        """One step of one backfill: the ids of the runs it made."""
        created: list[tuple[str, str]] = []
        with self.store.write() as tx:
            row = tx.claim_backfill(backfill_id)
            if row is None:  # not running, or another runner is pacing it right now
                return []
            now = self._now()
            counts = tx.backfill_runs_by_status(backfill_id)
            unfinished = sum(counts.get(status, 0) for status in UNFINISHED)
            if row.next_time is None:
                if unfinished == 0:
                    status = "failed" if counts.get("failed") else "completed"
                    tx.finish_backfill(backfill_id, status, now)
                return []
            slots = row.max_parallel - unfinished
            if slots <= 0:
                return []
            wf = self.catalog.find(row.workflow)
            if wf is None:  # a runner that holds the workflow's code paces it
                return []
            spec = CronSpec.parse(row.cron, row.timezone)
            base = json.loads(row.context)
            cursor: float | None = row.next_time
            skipped = scanned = 0
            while slots > 0 and cursor is not None and scanned < MAX_SCAN:
                batch = list(spec.times_in(cursor, row.end_at, limit=BATCH))
                if not batch:
                    cursor = None
                    break
                taken = tx.scheduled_times_taken(wf.name, batch) if row.only_missing else set()
                stopped_at: float | None = None
                for t in batch:
                    if slots <= 0:
                        stopped_at = t
                        break
                    scanned += 1
                    if t in taken:
                        skipped += 1
                        continue
                    context = {
                        **base,
                        "scheduled_time": scheduled_time_text(t, row.timezone),
                        "backfill_id": backfill_id,
                    }
                    created.append(self._create_run(tx, wf, context, t, backfill_id, now))
                    slots -= 1
                if stopped_at is not None:
                    cursor = stopped_at
                else:
                    after = spec.next_after(batch[-1])
                    cursor = after if after is not None and after <= row.end_at else None
            tx.advance_backfill(backfill_id, cursor, len(created), skipped, now)
        if created:
            self._on_created(created)
        return [eid for eid, _input in created]

    def _create_run(
        self,
        tx: WriteTx,
        wf: Workflow,
        context: dict[str, object],
        scheduled_for: float,
        backfill_id: str,
        now: float,
    ) -> tuple[str, str]:
        specs = self._specs.get((wf.name, wf.version))
        if specs is None:  # the same for every run of a version: built once
            specs = self._specs[(wf.name, wf.version)] = [
                NewTask(tid, index, task.dependencies, task.retry.max_attempts)
                for index, (tid, task) in enumerate(wf.tasks.items())
            ]
        execution_id = str(uuid.uuid4())
        input_json = dumps_context(context)
        tx.create_execution(
            execution_id,
            tenant=self.tenant,
            package=wf.package,
            workflow_name=wf.name,
            workflow_version=wf.version,
            input_json=input_json,
            tasks=specs,
            now=now,
            package_id=wf.origin.package_id if wf.origin is not None else None,
            deadline_at=None if wf.deadline is None else now + wf.deadline,
            origin=RunOrigin(
                priority=BACKFILL_PRIORITY, scheduled_for=scheduled_for, backfill_id=backfill_id
            ),
        )
        tx.add_events([NewEvent(execution_id, None, "execution_started", None, None, now)])
        return execution_id, input_json
