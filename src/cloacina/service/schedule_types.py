"""The values of schedules for every face (:class:`Schedule`, :class:`ScheduleFire`) and the
checks of a schedule's input, shared by the runner (:mod:`cloacina.service.schedules`) and
the HTTP client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloacina.engine.schedules import spec_for
from cloacina.errors import InvalidScheduleError
from cloacina.model.context import dumps_context
from cloacina.model.cron import to_instant
from cloacina.model.status import to_datetime
from cloacina.store.schedules import FireRow, ScheduleRow

#: Longest schedule name the store keeps (``schedules.name``).
NAME_MAX = 255
#: Time input: an aware datetime, epoch seconds, or an ISO 8601 string / naive datetime
#: read in the schedule's zone.
TimeArg = datetime | float | int | str | None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class Schedule:
    """A cron schedule of a workflow, as stored. Times are aware UTC datetimes;
    ``next_fire_at`` is None while paused or once past its ``end``. ``source`` is ``api``
    (added through the API, CLI or HTTP) or ``declared`` (by ``@workflow(schedules=...)``
    or a package, ``package`` naming it)."""

    id: str
    name: str
    workflow: str
    cron: str
    timezone: str
    enabled: bool
    catchup: str
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    source: str
    max_catchup: int = 100
    context: dict[str, Any] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    package: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    revision: int = 1

    @classmethod
    def from_row(cls, row: ScheduleRow) -> Schedule:
        return cls(
            id=row.id,
            name=row.name,
            workflow=row.workflow,
            cron=row.cron,
            timezone=row.timezone,
            enabled=row.enabled,
            catchup=row.catchup,
            next_fire_at=to_datetime(row.next_fire_at) if row.enabled else None,
            last_fire_at=to_datetime(row.last_fire_at),
            source=row.source,
            max_catchup=row.max_catchup,
            context=json.loads(row.context or "{}"),
            start=to_datetime(row.start_at),
            end=to_datetime(row.end_at),
            package=row.package,
            created_at=to_datetime(row.created_at),
            updated_at=to_datetime(row.updated_at),
            revision=row.revision,
        )

    def next_times(self, count: int = 3) -> list[datetime]:
        """The next ``count`` fire times (aware, in the schedule's zone), from its next one."""
        if self.next_fire_at is None:
            return []
        spec = spec_for(self.cron, self.timezone)
        out: list[datetime] = []
        t: float | None = self.next_fire_at.timestamp()
        end = None if self.end is None else self.end.timestamp()
        while t is not None and len(out) < count and (end is None or t <= end):
            out.append(spec.local(t))
            t = spec.next_after(t)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601."""
        return {
            "id": self.id,
            "name": self.name,
            "workflow": self.workflow,
            "cron": self.cron,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "catchup": self.catchup,
            "max_catchup": self.max_catchup,
            "next_fire_at": _iso(self.next_fire_at),
            "last_fire_at": _iso(self.last_fire_at),
            "source": self.source,
            "package": self.package,
            "context": self.context,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "revision": self.revision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            workflow=str(data["workflow"]),
            cron=str(data["cron"]),
            timezone=str(data["timezone"]),
            enabled=bool(data["enabled"]),
            catchup=str(data["catchup"]),
            next_fire_at=_when(data.get("next_fire_at")),
            last_fire_at=_when(data.get("last_fire_at")),
            source=str(data.get("source", "api")),
            max_catchup=int(data.get("max_catchup", 100)),
            context=dict(data.get("context") or {}),
            start=_when(data.get("start")),
            end=_when(data.get("end")),
            package=data.get("package"),
            created_at=_when(data.get("created_at")),
            updated_at=_when(data.get("updated_at")),
            revision=int(data.get("revision", 1)),
        )


@dataclass(frozen=True)
class ScheduleFire:
    """A scheduled time that fired: when it was due, when it fired, and the run it started."""

    scheduled_for: datetime
    fired_at: datetime
    execution_id: str | None
    schedule_id: str = ""
    worker_id: str | None = None

    @classmethod
    def from_row(cls, row: FireRow) -> ScheduleFire:
        scheduled = to_datetime(row.scheduled_for)
        fired = to_datetime(row.fired_at)
        assert scheduled is not None and fired is not None
        return cls(scheduled, fired, row.execution_id, row.schedule_id, row.worker_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduled_for": self.scheduled_for.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "execution_id": self.execution_id,
            "schedule_id": self.schedule_id,
            "worker_id": self.worker_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleFire:
        scheduled = _when(data["scheduled_for"])
        fired = _when(data["fired_at"])
        assert scheduled is not None and fired is not None
        return cls(
            scheduled,
            fired,
            data.get("execution_id"),
            str(data.get("schedule_id", "")),
            data.get("worker_id"),
        )


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave as it is" for :meth:`ScheduleService.update_schedule` (None clears a bound).
UNSET: Any = _Unset()


def check_context(context: Mapping[str, Any] | None) -> str:
    """A schedule's context as stored JSON (an object), or InvalidScheduleError."""
    if context is None:
        return "{}"
    if not isinstance(context, Mapping):
        raise InvalidScheduleError(
            f"a schedule's context must be a JSON object (a dict), not {type(context).__name__}",
            field="context",
        )
    try:
        return dumps_context(dict(context))
    except Exception as exc:
        raise InvalidScheduleError(
            f"the schedule's context must be JSON-serialisable ({exc})", field="context"
        ) from None


def check_bounds(start: TimeArg, end: TimeArg, timezone: str) -> tuple[float | None, float | None]:
    """``start``/``end`` as epoch seconds; InvalidScheduleError if start is after end."""
    first = None if start is None else to_instant(start, timezone)
    last = None if end is None else to_instant(end, timezone)
    if first is not None and last is not None and first > last:
        raise InvalidScheduleError(
            f"the schedule's start ({start}) is after its end ({end}): swap them", field="start"
        )
    return first, last


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise InvalidScheduleError(
            f"a schedule name must be a non-empty string of at most {NAME_MAX} characters, "
            f"not {name!r}",
            field="name",
        )
    return name.strip()


__all__ = [
    "NAME_MAX",
    "UNSET",
    "Schedule",
    "ScheduleFire",
    "TimeArg",
    "check_bounds",
    "check_context",
    "check_name",
]
