"""Declared schedules: ``@workflow(..., schedules=[cron(...)])`` and the same on
``@packaged_workflow``, made rows of ``schedules`` with ``source='declared'``.

Each declaration has a name that never changes while the code keeps declaring it:
``<workflow>:<name>`` (the ``cron(name=...)``), else ``<workflow>:<n>`` (its 1-based position
in the list). Applying the declarations of a package (or of this process's workflows) makes
the rows match them: a new one is inserted, a changed one updated **in place** (same row,
``last_fire_at`` kept; a new expression, zone or bound applies from now, so no earlier time
fires), an identical one left alone (registering the same package again changes nothing),
and rows no longer declared are removed. A new version of a package declares the same
names, so it takes over its predecessor's rows: no second row, no double fire and no gap.
A paused declared schedule stays paused.

A package's declarations are those of its default version (the promoted one, else the
highest), applied by the runner that registers, unregisters or promotes it; a package's
rows go when its last version is unregistered. Workflows defined in the process declare
theirs with ``package`` NULL, applied by :meth:`register_schedules` (called when a runner
that executes tasks starts).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloacina.engine.schedules import next_fire_time, spec_for
from cloacina.model.context import dumps_context
from cloacina.model.cron import CronSchedule
from cloacina.registry.registry import WorkflowRef
from cloacina.store.schedules import ScheduleRow

if TYPE_CHECKING:
    from cloacina.clock import Clock
    from cloacina.model.workflow import CatalogView, Workflow
    from cloacina.registry.registry import PackageRegistry
    from cloacina.store.base import Store

log = logging.getLogger("cloacina.schedules")


@dataclass(frozen=True)
class Declared:
    """One declared schedule: its row's name, its workflow and the declaration."""

    name: str
    workflow: str
    schedule: CronSchedule


def declared_of(wf: Workflow) -> list[Declared]:
    """The declarations of a workflow, with their rows' names."""
    return [
        Declared(f"{wf.name}:{s.name or index}", wf.name, s)
        for index, s in enumerate(wf.schedules, start=1)
    ]


def _wanted(decl: Declared) -> dict[str, Any]:
    s = decl.schedule
    return {
        "workflow": decl.workflow,
        "cron": s.expression,
        "timezone": s.timezone,
        "context": dumps_context(dict(s.context)),
        "catchup": s.catchup,
        "max_catchup": s.max_catchup,
        "start_at": s.start,
        "end_at": s.end,
    }


_TIMING = ("cron", "timezone", "start_at", "end_at")


class DeclaredScheduleService:
    """Declared schedules of :class:`~cloacina.runner.DefaultRunner` (a mixin: the runner
    and :class:`~cloacina.service.schedules.ScheduleService` provide the attributes declared
    here)."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock
        catalog: CatalogView
        registry: PackageRegistry

        def _schedule_now(self) -> float: ...

        def _schedules_changed(self) -> None: ...

        def _check_open(self) -> None: ...

    def register_schedules(self) -> int:
        """Create (or bring up to date) the schedules declared by the workflows defined in
        this process (``@workflow(..., schedules=[...])``): never twice, whoever calls it and
        however often. Returns how many rows were created or changed."""
        self._check_open()
        here = self.catalog.second.all()
        decls = [d for wf in here for d in declared_of(wf)]
        return self._apply_declared(decls, None, {wf.name for wf in here})

    def _declare_package_schedules(self, package: str) -> int:
        """Make the schedules of ``package`` those its default version declares (none once
        it has no version left)."""
        names = {
            name
            for info in self.registry.list_packages()
            if info.package == package and info.default
            for name in info.workflows
        }
        decls: list[Declared] = []
        for name in sorted(names):
            wf = self.registry.lookup(WorkflowRef(workflow=name, package=package))
            if wf is not None:
                decls.extend(declared_of(wf))
        return self._apply_declared(decls, package, None)

    def _apply_declared(
        self, decls: Iterable[Declared], package: str | None, workflows: set[str] | None
    ) -> int:
        """Make the declared rows of ``package`` (of its ``workflows`` when given) match
        ``decls``; how many rows were created, changed or removed."""
        rows = [r for r in self.store.list_schedule_rows(source="declared") if r.package == package]
        if workflows is not None:
            rows = [r for r in rows if r.workflow in workflows]
        mine = {r.name: r for r in rows}
        done = 0
        for decl in decls:
            row = mine.pop(decl.name, None)
            if row is None:
                done += self._insert_declared(decl, package)
            else:
                done += self._update_declared(row, decl, package)
        for row in mine.values():  # no longer declared
            if self.store.delete_schedule(row.id):
                done += 1
        if done:
            self._schedules_changed()
        return done

    def _insert_declared(self, decl: Declared, package: str | None) -> int:
        taken = self.store.find_schedules(decl.name, limit=1)
        if taken and taken[0].name == decl.name:
            other = taken[0]
            if other.source == "declared" and other.workflow == decl.workflow:
                # The workflow moved to this package (registered with replace=True): its
                # schedule moves with it.
                return self._update_declared(other, decl, package)
            log.warning(
                "not creating the schedule %r declared by workflow %r: a schedule of that name "
                "exists already (%s, workflow %r); rename one of them",
                decl.name,
                decl.workflow,
                other.source,
                other.workflow,
            )
            return 0
        want = _wanted(decl)
        now = self._schedule_now()
        spec = spec_for(want["cron"], want["timezone"])
        row = ScheduleRow(
            id=str(uuid.uuid4()),
            name=decl.name,
            source="declared",
            package=package,
            enabled=True,
            anchor_at=now,
            next_fire_at=next_fire_time(spec, now, want["start_at"], want["end_at"]),
            last_fire_at=None,
            revision=1,
            created_at=now,
            updated_at=now,
            **want,
        )
        # Another runner applying the same declarations may have come first: that is fine.
        return 1 if self.store.insert_schedule(row) else 0

    def _update_declared(self, row: ScheduleRow, decl: Declared, package: str | None) -> int:
        want = _wanted(decl)
        if row.package != package:
            want["package"] = package
        differ = {k: v for k, v in want.items() if getattr(row, k) != v}
        if not differ:
            return 0  # the same declaration again: nothing changes
        retimed = any(k in differ for k in _TIMING)
        spec = spec_for(want["cron"], want["timezone"])

        def decide(current: ScheduleRow, now: float) -> dict[str, Any] | None:
            changes = {k: v for k, v in want.items() if getattr(current, k) != v}
            if not changes:
                return None
            if retimed:
                anchor = max(current.anchor_at, now)  # no time from before the change fires
                changes["anchor_at"] = anchor
                changes["next_fire_at"] = next_fire_time(
                    spec, anchor, want["start_at"], want["end_at"]
                )
            return changes

        now = None if self.clock.shared_with_database else self.clock.now()
        self.store.change_schedule(row.id, decide, now)
        return 1


__all__ = ["Declared", "DeclaredScheduleService", "declared_of"]
