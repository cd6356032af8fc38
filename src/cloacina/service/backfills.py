"""Backfills for every face: start one, follow its progress, pause, resume or cancel it.

``runner.backfill("nightly", start, end)`` stores a backfill of every time of the cron
expression in ``[start, end]`` (by default the workflow's one declared schedule) and returns
its id at once; the engines of the runners that execute tasks make its runs, at most
``max_parallel`` unfinished at a time, at a priority below fresh runs (see
:mod:`cloacina.engine.backfills`). ``only_missing`` (the default) skips the times that have a
run of the workflow already. A range of more than :data:`MAX_BACKFILL_TIMES` times is
refused unless ``force=True``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.engine.backfills import BackfillPacer
from cloacina.errors import (
    BackfillNotFoundError,
    InvalidScheduleError,
    InvalidStateError,
    RequestError,
    WorkflowNotFoundError,
)
from cloacina.model.context import as_context_dict, dumps_context
from cloacina.model.cron import CronSpec, to_instant
from cloacina.model.status import to_datetime
from cloacina.service.audited import audit_backfill, audit_backfill_create
from cloacina.store.backfills import BackfillRow

if TYPE_CHECKING:
    from cloacina.clock import Clock
    from cloacina.engine.engine import Engine
    from cloacina.model.workflow import CatalogView, Workflow
    from cloacina.service.types import WorkflowInfo
    from cloacina.settings import Settings
    from cloacina.store.base import Store

#: The most scheduled times a backfill may hold without ``force=True``.
MAX_BACKFILL_TIMES = 100_000
#: A backfill's statuses that never change again.
FINAL = ("completed", "failed", "cancelled")

TimeArg = datetime | float | int | str


@dataclass(frozen=True)
class Backfill:
    """A backfill and its progress: ``total`` scheduled times, of which ``created`` have a
    run so far and ``skipped`` had one already; of its runs, ``completed``, ``failed``,
    ``cancelled`` ended and ``running`` have not (running or paused)."""

    id: str
    workflow: str
    cron: str
    timezone: str
    start: datetime
    end: datetime
    only_missing: bool
    max_parallel: int
    #: ``running`` (runs being made), ``paused`` (no new runs; its runs go on),
    #: ``completed``, ``failed`` (a run failed), ``cancelled``.
    status: str
    total: int
    created: int
    completed: int
    failed: int
    running: int
    skipped: int
    cancelled: int
    #: The next scheduled time to get a run (None: every time has one).
    next_time: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    context: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def done(self) -> int:
        """Scheduled times handled for good: their run ended, or they were skipped."""
        return self.completed + self.failed + self.cancelled + self.skipped

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @classmethod
    def from_row(cls, row: BackfillRow, counts: Mapping[str, int]) -> Backfill:
        start = to_datetime(row.start_at)
        end = to_datetime(row.end_at)
        created = to_datetime(row.created_at)
        updated = to_datetime(row.updated_at)
        assert start is not None and end is not None and created is not None
        assert updated is not None
        return cls(
            id=row.id,
            workflow=row.workflow,
            cron=row.cron,
            timezone=row.timezone,
            start=start,
            end=end,
            only_missing=row.only_missing,
            max_parallel=row.max_parallel,
            status=row.status,
            total=row.total,
            created=row.created_runs,
            completed=counts.get("completed", 0),
            failed=counts.get("failed", 0),
            running=sum(counts.get(s, 0) for s in ("pending", "running", "paused")),
            skipped=row.skipped,
            cancelled=counts.get("cancelled", 0),
            next_time=to_datetime(row.next_time),
            created_at=created,
            updated_at=updated,
            finished_at=to_datetime(row.finished_at),
            context=json.loads(row.context or "{}"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "workflow": self.workflow,
            "cron": self.cron,
            "timezone": self.timezone,
            "start": iso(self.start),
            "end": iso(self.end),
            "only_missing": self.only_missing,
            "max_parallel": self.max_parallel,
            "status": self.status,
            "total": self.total,
            "created": self.created,
            "completed": self.completed,
            "failed": self.failed,
            "running": self.running,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "next_time": iso(self.next_time),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "finished_at": iso(self.finished_at),
            "context": self.context,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backfill:
        """The inverse of :meth:`to_dict` (for the HTTP client)."""

        def when(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        start, end = when(data["start"]), when(data["end"])
        created, updated = when(data["created_at"]), when(data["updated_at"])
        assert start is not None and end is not None
        assert created is not None and updated is not None
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            cron=data["cron"],
            timezone=data["timezone"],
            start=start,
            end=end,
            only_missing=bool(data["only_missing"]),
            max_parallel=int(data["max_parallel"]),
            status=data["status"],
            total=int(data["total"]),
            created=int(data["created"]),
            completed=int(data["completed"]),
            failed=int(data["failed"]),
            running=int(data["running"]),
            skipped=int(data["skipped"]),
            cancelled=int(data["cancelled"]),
            next_time=when(data.get("next_time")),
            created_at=created,
            updated_at=updated,
            finished_at=when(data.get("finished_at")),
            context=dict(data.get("context") or {}),
        )


class BackfillService:
    """Backfills on the runner's database (mixed into ``DefaultRunner``)."""

    _backfill_pacer: BackfillPacer | None = None

    if TYPE_CHECKING:
        store: Store
        catalog: CatalogView
        tenant: str
        clock: Clock
        settings: Settings
        _engine: Engine
        _now: Any

        def _check_open(self) -> None: ...

        def resolve(self, name: str | type | Workflow) -> Workflow: ...

        def describe_workflow(self, name: str) -> WorkflowInfo: ...

        def cancel(self, execution_id: str, *, reason: str | None = None) -> None: ...

    # ---- the pacer (started by runners that execute tasks) -----------------------------------
    def _start_backfills(self) -> None:
        """Pace the database's running backfills from this runner (see engine/backfills.py)."""
        engine = self._engine

        def created(runs: Sequence[tuple[str, str]]) -> None:
            for execution_id, input_json in runs:
                engine.new_run(execution_id, input_json)

        pacer = BackfillPacer(
            self.store,
            self.catalog,
            self.tenant,
            self.clock.now,
            created,
            interval=max(0.1, 2 * self.settings.poll_interval),
        )
        self._backfill_pacer = pacer
        # After each engine cycle that committed events (runs may have ended): a flag check.
        self._unlisten_backfills = engine.add_commit_listener(pacer.runs_finished)
        pacer.start()

    def _stop_backfills(self) -> None:
        pacer, self._backfill_pacer = self._backfill_pacer, None
        if pacer is not None:
            self._unlisten_backfills()
            pacer.stop()

    def _poke_backfills(self) -> None:
        if self._backfill_pacer is not None:
            self._backfill_pacer.poke()

    # ---- the API -----------------------------------------------------------------------------
    @audit_backfill_create()
    def backfill(
        self,
        workflow: str | type | Workflow,
        start: TimeArg,
        end: TimeArg,
        *,
        cron: str | None = None,
        only_missing: bool = True,
        max_parallel: int = 4,
        context: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        force: bool = False,
    ) -> str:
        """Run ``workflow`` for every time of ``cron`` (in ``timezone``) from ``start`` to
        ``end`` (both included; datetimes, epoch seconds or ISO-8601 text, a naive one read
        in ``timezone``); returns the backfill's id at once. ``cron`` defaults to the
        workflow's declared schedule when it has exactly one (its zone too, unless
        ``timezone`` is given). Runs get ``scheduled_time`` (ISO-8601 in ``timezone``) and
        ``backfill_id`` in their context, on top of ``context``."""
        self._check_open()
        if isinstance(max_parallel, bool) or not isinstance(max_parallel, int):
            raise RequestError(
                f"max_parallel must be a whole number, not {max_parallel!r}", field="max_parallel"
            )
        if max_parallel < 1:
            raise RequestError(
                f"max_parallel must be at least 1, not {max_parallel}", field="max_parallel"
            )
        wf = self._backfill_workflow(workflow)
        if cron is None:
            declared = list(getattr(wf, "schedules", None) or ())
            if len(declared) != 1:
                how = "declares no schedule" if not declared else "declares several schedules"
                raise RequestError(
                    f"workflow {wf.name!r} {how}: give the cron expression to backfill "
                    "(cron=..., or --cron on the command line)",
                    field="cron",
                )
            cron = str(declared[0].expression)
            if timezone == "UTC":
                timezone = str(declared[0].timezone)
        spec = CronSpec.parse(cron, timezone)
        start_at = to_instant(start, timezone)
        end_at = to_instant(end, timezone)
        if start_at > end_at:
            raise InvalidScheduleError(
                f"the backfill's start ({_show(start_at, timezone)}) is after its end "
                f"({_show(end_at, timezone)}); swap them"
            )
        limit = None if force else MAX_BACKFILL_TIMES + 1
        total = spec.count_between(math.ceil(start_at) - 1, end_at, limit)
        if total > MAX_BACKFILL_TIMES and not force:
            raise InvalidScheduleError(
                f"the range from {_show(start_at, timezone)} to {_show(end_at, timezone)} holds "
                f"more than {MAX_BACKFILL_TIMES:,} times of {cron!r}; narrow it, or pass "
                "force=True (--force) to backfill them all"
            )
        if total == 0:
            raise InvalidScheduleError(
                f"no time of {cron!r} ({timezone}) lies between {_show(start_at, timezone)} "
                f"and {_show(end_at, timezone)}: nothing to backfill"
            )
        first = next(spec.times_in(start_at, end_at, 1))
        context_json = dumps_context(as_context_dict(dict(context) if context else None))
        now = self.clock.now()
        backfill_id = str(uuid.uuid4())
        self.store.insert_backfill(
            BackfillRow(
                id=backfill_id,
                workflow=wf.name,
                cron=cron,
                timezone=timezone,
                context=context_json,
                start_at=start_at,
                end_at=end_at,
                only_missing=only_missing,
                max_parallel=max_parallel,
                status="running",
                total=total,
                next_time=first,
                created_runs=0,
                skipped=0,
                created_at=now,
                updated_at=now,
                finished_at=None,
            )
        )
        self._poke_backfills()
        return backfill_id

    def list_backfills(self, limit: int = 100) -> list[Backfill]:
        """Backfills, newest first, with their progress."""
        rows = self.store.list_backfill_rows(limit)
        counts = self.store.backfill_run_counts([r.id for r in rows])
        return [Backfill.from_row(r, counts.get(r.id, {})) for r in rows]

    def get_backfill(self, backfill_id: str) -> Backfill:
        """One backfill (by its id or a unique prefix of it) with its progress."""
        row = self._backfill_row(backfill_id)
        return Backfill.from_row(row, self.store.backfill_run_counts([row.id]).get(row.id, {}))

    @audit_backfill("backfill.pause")
    def pause_backfill(self, backfill_id: str) -> None:
        """Make no new runs for this backfill until it is resumed (its runs go on)."""
        row = self._backfill_row(backfill_id)
        if row.status == "paused":
            return
        if not self.store.set_backfill_status(row.id, "paused", ("running",), self.clock.now()):
            self._refuse(row.id, "pause")

    @audit_backfill("backfill.resume")
    def resume_backfill(self, backfill_id: str) -> None:
        """Go on making a paused backfill's runs."""
        row = self._backfill_row(backfill_id)
        if row.status == "running":
            return
        if not self.store.set_backfill_status(row.id, "running", ("paused",), self.clock.now()):
            self._refuse(row.id, "resume")
        self._poke_backfills()

    @audit_backfill("backfill.cancel")
    def cancel_backfill(self, backfill_id: str) -> int:
        """Stop a backfill for good and cancel its unfinished runs; how many were cancelled."""
        row = self._backfill_row(backfill_id)
        if row.status != "cancelled":
            changed = self.store.set_backfill_status(
                row.id, "cancelled", ("running", "paused"), self.clock.now()
            )
            if not changed:
                self._refuse(row.id, "cancel")
        # After the status changed: no runner makes another run of it (the pacing
        # transaction claims running backfills only, and held the row until it committed).
        cancelled = 0
        for execution_id in self.store.backfill_unfinished_runs(row.id):
            try:
                self.cancel(execution_id, reason=f"backfill {row.id} cancelled")
            except InvalidStateError:  # it ended meanwhile
                continue
            cancelled += 1
        return cancelled

    # ---- helpers -----------------------------------------------------------------------------
    def _backfill_workflow(self, workflow: str | type | Workflow) -> Workflow:
        try:
            return self.resolve(workflow)
        except WorkflowNotFoundError:
            if isinstance(workflow, str):
                self.describe_workflow(workflow)  # raises, naming the nearest workflow
            raise

    def _backfill_row(self, backfill_id: str) -> BackfillRow:
        wanted = backfill_id.strip()
        rows = self.store.find_backfill_rows(wanted) if wanted else []
        if not rows:
            raise BackfillNotFoundError(
                f"no backfill with id {backfill_id!r}; list them with `cloacina backfills list`"
            )
        if len(rows) > 1:
            raise RequestError(
                f"{len(rows)} backfills have ids starting with {backfill_id!r}; give more of "
                "the id",
                field="backfill_id",
            )
        return rows[0]

    def _refuse(self, backfill_id: str, verb: str) -> None:
        status = self.get_backfill(backfill_id).status
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[verb]
        allowed = "a paused one" if verb == "resume" else "a running or paused one"
        raise InvalidStateError(f"backfill {backfill_id} is {status}: only {allowed} can be {done}")


def _show(t: float, timezone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(t, ZoneInfo(timezone)).isoformat()


__all__ = ["FINAL", "MAX_BACKFILL_TIMES", "Backfill", "BackfillService"]
