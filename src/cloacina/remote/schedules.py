"""The schedule methods of :class:`cloacina.Client` (``/api/v1/schedules``): the same names,
arguments and return types as ``DefaultRunner``'s (see :mod:`cloacina.service.schedules`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from cloacina.model.context import as_context_dict
from cloacina.service.schedules import UNSET, Schedule, ScheduleFire


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _when(value: Any) -> Any:
    """A time for a JSON body: an ISO 8601 string for a datetime, else as it is."""
    return value.isoformat() if isinstance(value, datetime) else value


def _items(doc: Any) -> list[Any]:
    items = doc.get("items") if isinstance(doc, dict) else doc
    return list(items) if isinstance(items, list) else []


def _workflow_name(workflow: Any) -> str:
    if isinstance(workflow, str):
        return workflow
    from cloacina.model.workflow import workflow_of

    return workflow_of(workflow).name


class ScheduleClient:
    """A mixin of :class:`cloacina.Client` (it provides ``_json`` and ``_call``)."""

    _json: Callable[..., Any]
    _call: Callable[..., httpx.Response]

    def add_schedule(
        self,
        workflow: str | type | Any,
        cron: str,
        *,
        timezone: str = "UTC",
        context: Mapping[str, Any] | None = None,
        catchup: str = "skip",
        max_catchup: int = 100,
        start: datetime | float | int | str | None = None,
        end: datetime | float | int | str | None = None,
        name: str | None = None,
    ) -> str:
        """Store a cron schedule of ``workflow``; its id (see ``DefaultRunner.add_schedule``)."""
        body = {
            "workflow": _workflow_name(workflow),
            "cron": cron,
            "timezone": timezone,
            "context": as_context_dict(context) if context else {},
            "catchup": catchup,
            "max_catchup": max_catchup,
            "start": _when(start),
            "end": _when(end),
            "name": name,
        }
        return str(self._json("POST", "/api/v1/schedules", json=body)["id"])

    def list_schedules(self, workflow: str | None = None) -> list[Schedule]:
        """The schedules, by name (of ``workflow`` when given)."""
        doc = self._json("GET", "/api/v1/schedules", params={"workflow": workflow})
        return [Schedule.from_dict(item) for item in _items(doc)]

    def get_schedule(self, schedule_id: str) -> Schedule:
        """One schedule, by id, unique id prefix or name."""
        return Schedule.from_dict(self._json("GET", f"/api/v1/schedules/{_seg(schedule_id)}"))

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop firing a schedule until it is resumed."""
        self._call("POST", f"/api/v1/schedules/{_seg(schedule_id)}/pause")

    def resume_schedule(self, schedule_id: str) -> None:
        """Fire a paused schedule again (its catch-up policy decides the missed times)."""
        self._call("POST", f"/api/v1/schedules/{_seg(schedule_id)}/resume")

    def update_schedule(
        self,
        schedule_id: str,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        context: Mapping[str, Any] | None = None,
        catchup: str | None = None,
        max_catchup: int | None = None,
        start: Any = UNSET,
        end: Any = UNSET,
        name: str | None = None,
        workflow: str | None = None,
    ) -> Schedule:
        """Change a schedule (see ``DefaultRunner.update_schedule``); the schedule after."""
        body: dict[str, Any] = {
            k: v
            for k, v in {
                "cron": cron,
                "timezone": timezone,
                "context": None if context is None else as_context_dict(context),
                "catchup": catchup,
                "max_catchup": max_catchup,
                "name": name,
                "workflow": workflow,
            }.items()
            if v is not None
        }
        if start is not UNSET:
            body["start"] = _when(start)
        if end is not UNSET:
            body["end"] = _when(end)
        doc = self._json("PATCH", f"/api/v1/schedules/{_seg(schedule_id)}", json=body)
        return Schedule.from_dict(doc)

    def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule and its history (the runs it started stay)."""
        self._call("DELETE", f"/api/v1/schedules/{_seg(schedule_id)}")

    def schedule_history(self, schedule_id: str, limit: int = 50) -> list[ScheduleFire]:
        """A schedule's fires, newest scheduled time first."""
        doc = self._json(
            "GET", f"/api/v1/schedules/{_seg(schedule_id)}/history", params={"limit": limit}
        )
        return [ScheduleFire.from_dict(item) for item in _items(doc)]


__all__ = ["ScheduleClient"]
