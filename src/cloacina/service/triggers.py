"""Triggers for every face: list them, pause and resume them; and the runner's part of
polling them (recording the triggers it knows, starting the runs their polls ask for).

``runner.list_triggers()`` returns a :class:`TriggerInfo` per trigger recorded in the
runner's database (by the runners and workers that know its function);
``runner.pause_trigger(name)`` stops its polls everywhere, ``runner.resume_trigger(name)``
makes it due at once, its failures forgotten.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.engine.triggers import Pollable, TriggerPoller
from cloacina.errors import CloacinaError, NotFoundError, WorkflowNotFoundError
from cloacina.model.context import dumps_context
from cloacina.model.status import to_datetime
from cloacina.model.trigger import Trigger, TriggerCatalog, trigger_key
from cloacina.packaging.manifest import Manifest
from cloacina.registry.loader import PackageRef
from cloacina.service.audit import Described, audited
from cloacina.store.records import NewEvent, NewTask, RunOrigin
from cloacina.store.triggers import TriggerDecl, TriggerRow

if TYPE_CHECKING:
    from cloacina.clock import Clock
    from cloacina.engine.engine import Engine
    from cloacina.model.workflow import CatalogView, Workflow
    from cloacina.registry.registry import PackageRegistry
    from cloacina.store.base import Store

log = logging.getLogger("cloacina.triggers")


@dataclass(frozen=True)
class TriggerInfo:
    """A trigger as recorded in the database: its definition, whether it is enabled, when
    it is polled next, and how its polls went."""

    name: str
    workflow: str
    poll_interval: float
    allow_concurrent: bool
    enabled: bool
    #: ``declared`` (``@trigger`` in a runner's code) or ``package`` (declared by a package).
    source: str
    package: str | None
    next_poll_at: datetime | None
    last_polled_at: datetime | None
    last_fired_at: datetime | None
    #: Failed polls in a row (the wait before the next one doubles with each).
    failures: int
    #: The traceback of the last failed poll (cleared by a poll that works).
    last_error: str | None

    @classmethod
    def from_row(cls, row: TriggerRow) -> TriggerInfo:
        return cls(
            name=row.name,
            workflow=row.workflow,
            poll_interval=row.poll_interval,
            allow_concurrent=row.allow_concurrent,
            enabled=row.enabled,
            source=row.source,
            package=row.package,
            next_poll_at=to_datetime(row.next_poll_at),
            last_polled_at=to_datetime(row.last_polled_at),
            last_fired_at=to_datetime(row.last_fired_at),
            failures=row.failures,
            last_error=row.last_error,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name,
            "workflow": self.workflow,
            "poll_interval": self.poll_interval,
            "allow_concurrent": self.allow_concurrent,
            "enabled": self.enabled,
            "source": self.source,
            "package": self.package,
            "next_poll_at": iso(self.next_poll_at),
            "last_polled_at": iso(self.last_polled_at),
            "last_fired_at": iso(self.last_fired_at),
            "failures": self.failures,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerInfo:
        def when(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(str(value))

        return cls(
            name=str(data["name"]),
            workflow=str(data["workflow"]),
            poll_interval=float(data["poll_interval"]),
            allow_concurrent=bool(data["allow_concurrent"]),
            enabled=bool(data["enabled"]),
            source=str(data["source"]),
            package=data.get("package"),
            next_poll_at=when(data.get("next_poll_at")),
            last_polled_at=when(data.get("last_polled_at")),
            last_fired_at=when(data.get("last_fired_at")),
            failures=int(data.get("failures") or 0),
            last_error=data.get("last_error"),
        )


def _decl(t: Trigger) -> TriggerDecl:
    return TriggerDecl(
        name=t.name,
        workflow=t.workflow,
        poll_interval=t.poll_interval,
        allow_concurrent=t.allow_concurrent,
        source="declared" if t.package is None else "package",
        package=t.package,
    )


def _trigger_target(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    return str(args.get("name", "")), None


class TriggerService:
    """The trigger methods of :class:`~cloacina.runner.DefaultRunner` (a mixin: the runner
    provides the attributes declared here)."""

    _trigger_poller: TriggerPoller | None = None
    _trigger_catalog: TriggerCatalog
    _trigger_known: tuple[int, int, dict[str, Pollable]]

    if TYPE_CHECKING:
        store: Store
        tenant: str
        clock: Clock
        catalog: CatalogView
        registry: PackageRegistry
        _engine: Engine
        _task_rows: dict[tuple[str, str], list[NewTask]]

        def _check_open(self) -> None: ...

        def resolve(self, name: str | type | Workflow) -> Workflow: ...

    # ---- the faces' methods ------------------------------------------------------------------
    def list_triggers(self) -> list[TriggerInfo]:
        """Every trigger recorded in this runner's database, by name."""
        return [TriggerInfo.from_row(row) for row in self.store.list_trigger_rows()]

    def get_trigger(self, name: str) -> TriggerInfo:
        """One trigger (:class:`~cloacina.errors.NotFoundError` naming the nearest one)."""
        row = self.store.find_trigger_row(name)
        if row is None:
            raise self._no_trigger(name)
        return TriggerInfo.from_row(row)

    @audited("trigger.pause", _trigger_target)
    def pause_trigger(self, name: str) -> None:
        """Stop polling trigger ``name`` (in every runner on this database) until resumed."""
        self._check_open()
        if not self.store.set_trigger_enabled(name, False, self.clock.now()):
            raise self._no_trigger(name)

    @audited("trigger.resume", _trigger_target)
    def resume_trigger(self, name: str) -> None:
        """Poll trigger ``name`` again, at once, its failures forgotten."""
        self._check_open()
        if not self.store.set_trigger_enabled(name, True, self.clock.now()):
            raise self._no_trigger(name)
        if self._trigger_poller is not None:
            self._trigger_poller.wake()

    def _no_trigger(self, name: str) -> NotFoundError:
        known = [row.name for row in self.store.list_trigger_rows()]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(known[:20]) or "none"
        return NotFoundError(
            f"no trigger named {name!r}{hint} (known: {listed}); a trigger is recorded when a "
            "runner or worker whose code declares it with @trigger starts"
        )

    # ---- polling (runners that execute tasks) ------------------------------------------------
    def _start_triggers(self, triggers: TriggerCatalog) -> None:
        """Record the triggers this runner knows and start polling them."""
        self._trigger_catalog = triggers
        self._trigger_known = (-1, -1, {})
        self._trigger_poller = TriggerPoller(
            self.store, self.clock, self._known_triggers, self._fire_trigger
        )
        self._known_triggers()  # records them now, before the first poll (and any list)
        self._trigger_poller.start()

    def _stop_triggers(self, grace: float = 0.0) -> None:
        """Stop polling (the polls running now get ``grace`` seconds to start their runs)."""
        poller, self._trigger_poller = self._trigger_poller, None
        if poller is not None:
            poller.stop(grace)

    def _known_triggers(self) -> dict[str, Pollable]:
        """The triggers this runner polls: those of the registered packages (polled in the
        packages' processes), and those of its trigger catalog whose workflow it knows.
        The latter are recorded in the database whenever that set changes (never twice:
        the name is the key); a package's are recorded when it is registered."""
        generation = (self._trigger_catalog.generation, self.catalog.generation)
        cached = self._trigger_known
        if (cached[0], cached[1]) == generation:
            return cached[2]
        known: dict[str, Pollable] = {}
        if self._engine.loader is not None:
            for trig, _ref in self._packaged_triggers(None):
                known[trig.name] = trig
        local: list[Trigger] = []
        for trig in self._trigger_catalog.all():
            if self._knows_workflow(trig):
                known[trig.name] = trig  # this process's own code wins a name
                local.append(trig)
        self.store.upsert_triggers([_decl(t) for t in local], self.clock.now())
        self._trigger_known = (generation[0], generation[1], known)
        return known

    def _packaged_triggers(self, package: str | None) -> list[tuple[Trigger, PackageRef]]:
        """The triggers the default version of each registered package (of ``package``
        alone when given) declares, polled in that version's processes."""
        out: list[tuple[Trigger, PackageRef]] = []
        for info in self.registry.list_packages():
            if not info.default or package not in (None, info.package):
                continue
            row = self.store.find_package(self.tenant, package_id=info.id)
            if row is None:  # unregistered meanwhile
                continue
            manifest = Manifest.from_toml(row.manifest)
            ref = PackageRef(row.id, row.sha256, row.package, row.version, manifest.modules)
            for spec in manifest.workflows:
                for data in spec.triggers:
                    try:
                        trig = Trigger.from_dict(
                            {**data, "workflow": f"{row.package}::{spec.name}"},
                            self._remote_poll(ref, str(data.get("name"))),
                            row.package,
                        )
                    except CloacinaError as exc:
                        log.warning("package %s %s: %s", row.package, row.version, exc)
                        continue
                    out.append((trig, ref))
        return out

    def _remote_poll(self, ref: PackageRef, name: str) -> Callable[[], Any]:
        """A function that polls trigger ``name`` in a process of package ``ref`` (the
        package's processes are served on the engine's loop)."""

        def poll() -> Any:
            loader = self._engine.loader
            if loader is None:  # pragma: no cover - a runner without a loader polls none
                raise CloacinaError("this runner runs no package code")
            future = asyncio.run_coroutine_threadsafe(
                loader.poll_trigger(ref, name), self._engine._loop
            )
            return future.result()

        poll.__qualname__ = name
        return poll

    def _declare_package_triggers(self, package: str) -> None:
        """Make the recorded triggers of ``package`` those its default version declares
        (none once it has no version left): registered with it, removed with it, a new
        version's taking over the same names (a paused one stays paused)."""
        declared = [trig for trig, _ref in self._packaged_triggers(package)]
        self.store.upsert_triggers([_decl(t) for t in declared], self.clock.now())
        self.store.delete_package_triggers(package, keep=[t.name for t in declared])
        if self._trigger_poller is not None:
            self._trigger_poller.wake()

    def _knows_workflow(self, trig: Trigger) -> bool:
        try:
            self.resolve(trig.workflow)
        except WorkflowNotFoundError:
            log.warning(
                "trigger %r starts workflow %r, which this runner does not know: it is not "
                "polled here (import the module that defines the workflow, or register its "
                "package)",
                trig.name,
                trig.workflow,
            )
            return False
        except CloacinaError as exc:  # e.g. a malformed package::workflow@version
            log.warning("trigger %r is not polled: %s", trig.name, exc)
            return False
        return True

    def _fire_trigger(self, trig: Any, context: dict[str, Any]) -> str | None:
        """Start the run a poll asked for, unless a run this trigger started with the same
        context is still active (and it does not allow concurrent runs) or it was paused
        meanwhile. One transaction checks and inserts, with the trigger's row locked, so
        two runners never both start one. The new run's id, or None."""
        wf = self.resolve(trig.workflow)
        key = trigger_key(context)
        input_json = dumps_context(context)
        specs = self._task_rows.get((wf.name, wf.version))
        if specs is None:
            specs = self._task_rows[(wf.name, wf.version)] = [
                NewTask(tid, index, task.dependencies, task.retry.max_attempts)
                for index, (tid, task) in enumerate(wf.tasks.items())
            ]
        execution_id = str(uuid.uuid4())
        now = self.clock.now()
        with self.store.write() as tx:
            if not tx.lock_trigger(trig.name):  # paused (or removed) since its poll began
                return None
            if not trig.allow_concurrent:
                active = tx.active_triggered_run(trig.name, key)
                if active is not None:
                    log.debug(
                        "trigger %r: run %s of this context is still active", trig.name, active
                    )
                    return None
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
                origin=RunOrigin(trigger_name=trig.name, trigger_key=key),
            )
            tx.mark_triggered(trig.name, now)
            tx.add_events(
                [
                    NewEvent(
                        execution_id,
                        None,
                        "execution_started",
                        None,
                        None,
                        now,
                    )
                ]
            )
        self._engine.new_run(execution_id, input_json)
        return execution_id
