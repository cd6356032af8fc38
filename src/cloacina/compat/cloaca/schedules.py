"""cloaca's cron and trigger methods of the runner, on Cloacina's schedules and triggers
(DESIGN §10): dicts with cloaca's keys, errors as cloaca words them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.errors import CloacinaError, NotFoundError
from cloacina.model.status import ExecutionStatus

if TYPE_CHECKING:
    from cloacina.runner import DefaultRunner as _Runner
    from cloacina.service.schedules import Schedule


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _schedule_dict(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "workflow_name": s.workflow,
        "cron_expression": s.cron,
        "timezone": s.timezone,
        "enabled": bool(s.enabled),
        "catchup_policy": s.catchup,
        "next_run_at": _iso(s.next_fire_at),
        "last_run_at": _iso(s.last_fire_at),
        "created_at": _iso(s.created_at),
        "updated_at": _iso(s.updated_at),
    }


def _page(items: list[Any], limit: int | None, offset: int | None) -> list[Any]:
    start = max(0, offset or 0)
    return items[start : start + (100 if limit is None else max(0, limit))]


def _schedule_id(text: str, action: str) -> str:
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        raise ValueError(
            f"Failed to {action}: Configuration error: Invalid schedule ID: {text}"
        ) from None


class CronMethods:
    """``register_cron_workflow`` and the rest, on ``self._runner`` (a Cloacina runner)."""

    _runner: _Runner

    def register_cron_workflow(
        self, workflow_name: str, cron_expression: str, timezone: str
    ) -> str:
        """Add an enabled cron schedule of ``workflow_name``; returns its id."""
        try:
            return self._runner.add_schedule(workflow_name, cron_expression, timezone=timezone)
        except (CloacinaError, ValueError) as exc:
            raise ValueError(
                "Failed to register cron workflow: Configuration error: Invalid cron "
                f"expression or timezone: {exc}"
            ) from None

    def list_cron_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """The schedules, oldest first (``enabled_only``, at most ``limit`` from ``offset``)."""
        found = sorted(
            self._runner.list_schedules(),
            key=lambda s: (s.created_at or datetime.min.astimezone(), s.id),
        )
        if enabled_only:
            found = [s for s in found if s.enabled]
        return [_schedule_dict(s) for s in _page(found, limit, offset)]

    def get_cron_schedule(self, schedule_id: str) -> dict[str, Any]:
        sid = _schedule_id(schedule_id, "get cron schedule")
        try:
            return _schedule_dict(self._runner.get_schedule(sid))
        except CloacinaError as exc:
            raise ValueError(f"Failed to get cron schedule: {exc}") from None

    def update_cron_schedule(self, schedule_id: str, cron_expression: str, timezone: str) -> None:
        sid = _schedule_id(schedule_id, "update cron schedule")
        try:
            self._runner.update_schedule(sid, cron=cron_expression, timezone=timezone)
        except (CloacinaError, ValueError) as exc:
            raise ValueError(f"Failed to update cron schedule: {exc}") from None

    def set_cron_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        """Enable or disable a schedule (an unknown id changes nothing, as in cloaca)."""
        try:
            sid = str(uuid.UUID(str(schedule_id)))
            if enabled:
                self._runner.resume_schedule(sid)
            else:
                self._runner.pause_schedule(sid)
        except (NotFoundError, ValueError):
            return
        except CloacinaError as exc:
            raise ValueError(f"Failed to set cron schedule enabled: {exc}") from None

    def delete_cron_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; no error when it is already gone."""
        sid = _schedule_id(schedule_id, "delete cron schedule")
        try:
            self._runner.remove_schedule(sid)
        except NotFoundError:
            return
        except CloacinaError as exc:
            raise ValueError(f"Failed to delete cron schedule: {exc}") from None

    def get_cron_execution_history(
        self, schedule_id: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """The schedule's fires, newest first."""
        start = max(0, offset or 0)
        count = 100 if limit is None else max(0, limit)
        if count == 0:
            return []
        try:
            fires = self._runner.schedule_history(
                _schedule_id(schedule_id, "get cron execution history"), start + count
            )
        except NotFoundError:
            return []
        except CloacinaError as exc:
            raise ValueError(f"Failed to get cron execution history: {exc}") from None
        return [
            {
                "id": f"{f.schedule_id}:{f.scheduled_for.isoformat()}",
                "schedule_id": f.schedule_id,
                "scheduled_time": f.scheduled_for.isoformat(),
                "claimed_at": f.fired_at.isoformat(),
                "workflow_execution_id": f.execution_id,
                "created_at": f.fired_at.isoformat(),
                "updated_at": f.fired_at.isoformat(),
            }
            for f in fires[start:]
        ]

    def get_cron_execution_stats(self, since: str) -> dict[str, Any]:
        """Fires since ``since`` (RFC 3339 with an offset): how many, how many completed,
        how many started no run, and the completed share in percent."""
        try:
            when = datetime.fromisoformat(str(since))
        except ValueError as exc:
            raise ValueError(f"Invalid datetime format: {exc}") from None
        if when.tzinfo is None:
            raise ValueError(f"Invalid datetime format: {since!r} has no UTC offset")
        total = successful = lost = 0
        for schedule in self._runner.list_schedules():
            for fire in self._runner.schedule_history(schedule.id, 10_000):
                if fire.fired_at < when:
                    continue
                total += 1
                if fire.execution_id is None:
                    lost += 1
                    continue
                try:
                    status = self._runner.get_execution_status(fire.execution_id)
                except NotFoundError:
                    continue
                if status == ExecutionStatus.COMPLETED:
                    successful += 1
        rate = 100.0 * successful / total if total else 0.0
        return {
            "total_executions": total,
            "successful_executions": successful,
            "lost_executions": lost,
            "success_rate": float(rate),
        }


class TriggerMethods:
    """cloaca's trigger management on Cloacina's recorded triggers."""

    _runner: _Runner

    def list_trigger_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        found = self._runner.list_triggers()
        if enabled_only:
            found = [t for t in found if t.enabled]
        return [self._trigger_dict(t) for t in _page(found, limit, offset)]

    def get_trigger_schedule(self, trigger_name: str) -> dict[str, Any] | None:
        try:
            return self._trigger_dict(self._runner.get_trigger(trigger_name))
        except NotFoundError:
            return None

    def get_trigger_execution_history(
        self, trigger_name: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """Cloacina records a trigger's last fire, not a history of them: always empty."""
        return []

    def set_trigger_enabled(self, trigger_name: str, enabled: bool) -> None:
        try:
            if enabled:
                self._runner.resume_trigger(trigger_name)
            else:
                self._runner.pause_trigger(trigger_name)
        except NotFoundError:
            return

    @staticmethod
    def _trigger_dict(t: Any) -> dict[str, Any]:
        return {
            "id": t.name,
            "trigger_name": t.name,
            "workflow_name": t.workflow,
            "poll_interval_ms": round(t.poll_interval * 1000),
            "allow_concurrent": bool(t.allow_concurrent),
            "enabled": bool(t.enabled),
            "last_poll_at": _iso(t.last_polled_at),
            "created_at": None,
            "updated_at": None,
        }
