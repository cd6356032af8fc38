"""Cron schedules for every face (DESIGN §10): add, list, show, pause, resume, update, remove
and their history; and the runner's part of firing them.

``runner.add_schedule("nightly", "0 2 * * *", timezone="Europe/Berlin")`` stores a schedule
in the runner's database; every runner and worker that executes tasks fires it (see
:mod:`cloacina.engine.schedules`). Times are decided by the runner's clock (the database's
for the system clock). A schedule added or edited (cron, zone or bounds) at instant t fires
first at its first time strictly after t; pausing it at t and resuming it later applies its
catch-up policy to the times that fell due meanwhile, never to those before t.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloacina.engine.schedules import (
    SchedulePoller,
    next_fire_time,
    plan_fires,
    scheduled_context,
    spec_for,
)
from cloacina.errors import InvalidScheduleError, NotFoundError
from cloacina.model.context import dumps_context
from cloacina.model.cron import CronSpec, validate_catchup
from cloacina.registry.registry import WorkflowRef
from cloacina.service.audit import Described, audited
from cloacina.service.declared_schedules import DeclaredScheduleService
from cloacina.service.schedule_types import (
    UNSET,
    Schedule,
    ScheduleFire,
    TimeArg,
    check_bounds,
    check_context,
    check_name,
)
from cloacina.store.records import NewEvent, NewTask, RunOrigin
from cloacina.store.schedules import ScheduleRow

if TYPE_CHECKING:
    from cloacina.clock import Clock
    from cloacina.engine.engine import Engine
    from cloacina.model.workflow import CatalogView, Workflow
    from cloacina.registry.registry import PackageRegistry
    from cloacina.store.base import Store

log = logging.getLogger("cloacina.schedules")

#: Seconds before a runner tries again a due schedule whose workflow it does not know (at
#: once when its workflows change).
UNKNOWN_RETRY = 30.0


def _schedule_target(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    if isinstance(args.get("schedule_id"), str):
        return str(args["schedule_id"]), None
    detail = {k: args.get(k) for k in ("workflow", "cron", "timezone", "name") if args.get(k)}
    return (str(result) if result else str(args.get("workflow", ""))), detail


def _update_target(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    changed = {
        k: v
        for k, v in args.items()
        if k not in ("self", "schedule_id", "context") and v is not UNSET and v is not None
    }
    if args.get("context") not in (None, UNSET):
        changed["context"] = "(changed)"
    return str(args.get("schedule_id", "")), (changed or None)


class ScheduleService(DeclaredScheduleService):
    """The schedule methods of :class:`~cloacina.runner.DefaultRunner` (a mixin: the
    runner provides the attributes declared here)."""

    _schedule_poller: SchedulePoller | None = None
    _schedule_warned: set[str]
    #: Schedules whose workflow this runner does not know: not tried again before this
    #: (monotonic) time, unless the runner's workflows change meanwhile.
    _schedule_unknown: dict[str, float]
    _schedule_unknown_generation: int = -1

    if TYPE_CHECKING:
        store: Store
        tenant: str
        clock: Clock
        catalog: CatalogView
        registry: PackageRegistry
        worker_id: str
        _engine: Engine
        _task_rows: dict[tuple[str, str], list[NewTask]]

        def _check_open(self) -> None: ...

        def resolve(self, name: str | type | Workflow) -> Workflow: ...

        def describe_workflow(self, name: str) -> Any: ...

    # ---- the faces' methods ------------------------------------------------------------------
    @audited("schedule.add", _schedule_target)
    def add_schedule(
        self,
        workflow: str,
        cron: str,
        *,
        timezone: str = "UTC",
        context: Mapping[str, Any] | None = None,
        catchup: str = "skip",
        max_catchup: int = 100,
        start: TimeArg = None,
        end: TimeArg = None,
        name: str | None = None,
    ) -> str:
        """Store a cron schedule of ``workflow`` and return its id. It fires first at its
        first time strictly after now (and not before ``start``, not after ``end``). Bad
        input (cron, zone, catch-up, bounds, context, an unknown workflow) raises and
        stores nothing."""
        self._check_open()
        spec = CronSpec.parse(cron, timezone)
        validate_catchup(catchup, max_catchup)
        first, last = check_bounds(start, end, timezone)
        context_json = check_context(context)
        self.describe_workflow(workflow)  # WorkflowNotFoundError naming the nearest one
        schedule_id = str(uuid.uuid4())
        label = check_name(name) if name is not None else f"{workflow}:{schedule_id[:8]}"
        now = self._schedule_now()
        row = ScheduleRow(
            id=schedule_id,
            name=label,
            workflow=workflow,
            cron=spec.expression,
            timezone=timezone,
            context=context_json,
            catchup=catchup,
            max_catchup=max_catchup,
            start_at=first,
            end_at=last,
            enabled=True,
            source="api",
            package=None,
            anchor_at=now,
            next_fire_at=next_fire_time(spec, now, first, last),
            last_fire_at=None,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        if not self.store.insert_schedule(row):
            raise InvalidScheduleError(
                f"a schedule named {label!r} exists already: pick another name, or change it "
                "with update_schedule",
                field="name",
            )
        self._schedules_changed()
        return schedule_id

    def list_schedules(self, workflow: str | None = None) -> list[Schedule]:
        """Every schedule of this runner's database (of ``workflow`` when given), by name."""
        return [Schedule.from_row(r) for r in self.store.list_schedule_rows(workflow=workflow)]

    def get_schedule(self, schedule_id: str) -> Schedule:
        """One schedule by id, name or short id (NotFoundError naming the nearest name)."""
        return Schedule.from_row(self._schedule_row(schedule_id))

    @audited("schedule.pause", _schedule_target)
    def pause_schedule(self, schedule_id: str) -> None:
        """Stop firing the schedule (everywhere) until resumed. Pausing a paused schedule
        changes nothing."""
        self._check_open()
        row = self._schedule_row(schedule_id)

        def decide(current: ScheduleRow, now: float) -> dict[str, Any] | None:
            if not current.enabled:
                return None
            # Times up to now are left behind; those that fall due while paused are the
            # catch-up policy's at the resume.
            return {"enabled": False, "anchor_at": max(current.anchor_at, now)}

        self._change(row.id, decide)

    @audited("schedule.resume", _schedule_target)
    def resume_schedule(self, schedule_id: str) -> None:
        """Fire the schedule again. The times that fell due while it was paused go by its
        catch-up policy (``skip``: none; ``latest``: the newest; ``all``: each, at most
        ``max_catchup``), never one from before the pause."""
        self._check_open()
        row = self._schedule_row(schedule_id)

        def decide(current: ScheduleRow, now: float) -> dict[str, Any] | None:
            if current.enabled:
                return None
            spec = spec_for(current.cron, current.timezone)
            return {
                "enabled": True,
                "next_fire_at": next_fire_time(
                    spec, current.anchor_at, current.start_at, current.end_at
                ),
            }

        self._change(row.id, decide)

    @audited("schedule.update", _update_target)
    def update_schedule(
        self,
        schedule_id: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        context: Mapping[str, Any] | None = None,
        catchup: str | None = None,
        max_catchup: int | None = None,
        start: TimeArg = UNSET,
        end: TimeArg = UNSET,
        name: str | None = None,
        workflow: str | None = None,
    ) -> Schedule:
        """Change a schedule; what is not given stays (``start=None``/``end=None`` remove a
        bound). A new cron expression, zone or bound applies from now: no time from before
        the change fires. Checked like :meth:`add_schedule`: bad input changes nothing.
        Returns the schedule as it is now."""
        self._check_open()
        row = self._schedule_row(schedule_id)
        zone = row.timezone if timezone is None else timezone
        expression = row.cron if cron is None else cron
        spec = CronSpec.parse(expression, zone)
        validate_catchup(
            row.catchup if catchup is None else catchup,
            row.max_catchup if max_catchup is None else max_catchup,
        )
        first = row.start_at if start is UNSET else start
        last = row.end_at if end is UNSET else end
        first_at, last_at = check_bounds(first, last, zone)
        changes: dict[str, Any] = {}
        if context is not None:
            changes["context"] = check_context(context)
        if catchup is not None:
            changes["catchup"] = catchup
        if max_catchup is not None:
            changes["max_catchup"] = max_catchup
        if name is not None:
            changes["name"] = check_name(name)
        if workflow is not None:
            self.describe_workflow(workflow)
            changes["workflow"] = workflow
        timing = {
            "cron": spec.expression,
            "timezone": zone,
            "start_at": first_at,
            "end_at": last_at,
        }
        retimed = {k: v for k, v in timing.items() if getattr(row, k) != v}

        def decide(current: ScheduleRow, now: float) -> dict[str, Any] | None:
            out = dict(changes)
            if retimed:
                out.update(retimed)
                anchor = max(current.anchor_at, now)  # no time from before the edit fires
                out["anchor_at"] = anchor
                out["next_fire_at"] = next_fire_time(spec, anchor, first_at, last_at)
            return out or None

        try:
            self._change(row.id, decide)
        except Exception as exc:
            if "uq_schedules_name" in str(exc) or "UNIQUE" in str(exc).upper():
                raise InvalidScheduleError(
                    f"a schedule named {name!r} exists already: pick another name",
                    field="name",
                ) from None
            raise
        return self.get_schedule(row.id)

    @audited("schedule.remove", _schedule_target)
    def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule and its history (the runs it started stay)."""
        self._check_open()
        row = self._schedule_row(schedule_id)
        if not self.store.delete_schedule(row.id):
            raise self._no_schedule(schedule_id)
        self._schedules_changed()

    def schedule_history(self, schedule_id: str, limit: int = 50) -> list[ScheduleFire]:
        """The schedule's fires, newest scheduled time first (at most ``limit``)."""
        if limit < 1:
            raise InvalidScheduleError(f"limit must be at least 1, not {limit}", field="limit")
        row = self._schedule_row(schedule_id)
        return [ScheduleFire.from_row(f) for f in self.store.schedule_fires(row.id, limit)]

    # ---- helpers -----------------------------------------------------------------------------
    def _schedule_now(self) -> float:
        """Now, by the clock schedules are judged by (the database's for the system clock)."""
        if self.clock.shared_with_database:
            return self.store.next_schedule_time(None)[1]
        return self.clock.now()

    def _schedule_row(self, schedule_id: str) -> ScheduleRow:
        found = self.store.find_schedules(schedule_id)
        if len(found) == 1:
            return found[0]
        if not found:
            raise self._no_schedule(schedule_id)
        exact = [r for r in found if schedule_id in (r.id, r.name)]
        if len(exact) == 1:
            return exact[0]
        raise InvalidScheduleError(
            f"{schedule_id!r} matches {len(found)} schedules "
            f"({', '.join(r.id[:12] for r in found[:5])}): give more of the id",
            field="schedule_id",
        )

    def _no_schedule(self, schedule_id: str) -> NotFoundError:
        names = [r.name for r in self.store.list_schedule_rows()]
        close = difflib.get_close_matches(schedule_id, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return NotFoundError(
            f"no schedule with id or name {schedule_id!r}{hint}; list them with "
            "`cloacina schedules list`"
        )

    def _change(self, schedule_id: str, decide: Any) -> ScheduleRow:
        now = None if self.clock.shared_with_database else self.clock.now()
        after = self.store.change_schedule(schedule_id, decide, now)
        if after is None:
            raise self._no_schedule(schedule_id)
        self._schedules_changed()
        return after

    def _schedules_changed(self) -> None:
        if self._schedule_poller is not None:
            self._schedule_poller.wake()

    # ---- firing (runners that execute tasks) -------------------------------------------------
    def _start_schedules(self) -> None:
        """Fire the due schedules of this runner's database from now on."""
        self._schedule_warned = set()
        self._schedule_unknown = {}
        try:  # the schedules declared by this process's workflows, before the first look
            self.register_schedules()
        except Exception as exc:  # the database may be briefly unavailable: not fatal
            log.warning("could not create the schedules this process declares: %s", exc)
        self._schedule_poller = SchedulePoller(self.store, self.clock, self._fire_schedule)
        self._schedule_poller.start()

    def _stop_schedules(self) -> None:
        poller, self._schedule_poller = self._schedule_poller, None
        if poller is not None:
            poller.stop()

    def _schedule_workflow(self, name: str) -> Workflow | None:
        """The workflow a schedule names, if this runner knows it (no registry sync here:
        the engine's poll picks up packages registered elsewhere)."""
        ref = WorkflowRef.parse(name)
        if not ref.qualified:
            return self.catalog.find(name)
        return self.registry.lookup(ref)

    def _unknown_workflow(self, row: ScheduleRow) -> None:
        if row.id not in self._schedule_warned:
            self._schedule_warned.add(row.id)
            log.warning(
                "schedule %r starts workflow %r, which this runner does not know: another "
                "runner that knows it will fire it (import its module, or register its "
                "package)",
                row.name,
                row.workflow,
            )

    def _fire_schedule(self, schedule_id: str, now: float | None) -> bool:
        """Fire a due schedule: one transaction locks its row, inserts a fire row and a run
        for each time its catch-up policy picks (another runner's fire of the same time
        makes ours do nothing), and moves the row on. False if this runner could not: it
        does not know the workflow, or another runner holds the row right now."""
        generation = self.catalog.generation
        if generation != self._schedule_unknown_generation:  # workflows came or went
            self._schedule_unknown_generation = generation
            self._schedule_unknown.clear()
        if self._schedule_unknown.get(schedule_id, 0.0) > time.monotonic():
            return False  # its workflow is unknown here: no write transaction every second
        started: list[tuple[str, str]] = []
        with self.store.write() as tx:
            locked = tx.lock_schedule(schedule_id, now)
            if locked is None:
                return False  # another runner is firing it (PostgreSQL), or it is gone
            row, at = locked
            if not row.enabled or row.next_fire_at is None or row.next_fire_at > at:
                return True  # fired (or paused) meanwhile
            wf = self._schedule_workflow(row.workflow)  # in memory: no query
            if wf is None:
                self._unknown_workflow(row)
                self._schedule_unknown[row.id] = time.monotonic() + UNKNOWN_RETRY
                return False  # nothing written: a runner that knows it fires it
            specs = self._task_rows.get((wf.name, wf.version))
            if specs is None:
                specs = self._task_rows[(wf.name, wf.version)] = [
                    NewTask(tid, index, task.dependencies, task.retry.max_attempts)
                    for index, (tid, task) in enumerate(wf.tasks.items())
                ]
            times, anchor, upcoming = plan_fires(row, at)
            for scheduled_for in times:
                execution_id = str(uuid.uuid4())
                if not tx.insert_fire(row.id, scheduled_for, at, execution_id, self.worker_id):
                    continue  # fired already (by another runner)
                input_json = dumps_context(scheduled_context(row, scheduled_for))
                tx.create_execution(
                    execution_id,
                    tenant=self.tenant,
                    package=wf.package,
                    workflow_name=wf.name,
                    workflow_version=wf.version,
                    input_json=input_json,
                    tasks=specs,
                    now=at,
                    package_id=wf.origin.package_id if wf.origin is not None else None,
                    deadline_at=None if wf.deadline is None else at + wf.deadline,
                    origin=RunOrigin(scheduled_for=scheduled_for, schedule_id=row.id),
                )
                tx.add_events(
                    [
                        NewEvent(
                            execution_id,
                            None,
                            "execution_started",
                            None,
                            json.dumps({"schedule_id": row.id, "scheduled_for": scheduled_for}),
                            at,
                        )
                    ]
                )
                started.append((execution_id, input_json))
            last = max([*times, row.last_fire_at or 0.0]) if times else row.last_fire_at
            tx.advance_schedule(row.id, anchor, upcoming, last)
        for execution_id, input_json in started:
            self._engine.new_run(execution_id, input_json)
        if started:
            log.debug("schedule %r started %d run(s)", row.name, len(started))
        return True


__all__ = [
    "UNSET",
    "Schedule",
    "ScheduleFire",
    "ScheduleService",
]
