"""cloaca's ``DefaultRunnerConfig``: the runner settings it names, with its defaults."""

from __future__ import annotations

from typing import Any

_DEFAULTS: dict[str, Any] = {
    "max_concurrent_tasks": 4,
    "scheduler_poll_interval_ms": 100,
    "task_timeout_seconds": 300,
    "workflow_timeout_seconds": 3600,
    "db_pool_size": 10,
    "enable_recovery": True,
    "enable_cron_scheduling": True,
    "cron_poll_interval_seconds": 30,
    "cron_max_catchup_executions": 100,
    "cron_enable_recovery": True,
    "cron_recovery_interval_seconds": 300,
    "cron_lost_threshold_minutes": 10,
    "cron_max_recovery_age_seconds": 86400,
    "cron_max_recovery_attempts": 3,
}


class DefaultRunnerConfig:
    """Runner settings as cloaca names them; ``None`` means the default.

    Cloacina uses ``max_concurrent_tasks``, ``scheduler_poll_interval_ms`` (its poll
    interval) and ``db_pool_size`` (PostgreSQL pool size); the others are kept and reported
    but Cloacina's own settings govern those behaviours.
    """

    max_concurrent_tasks: int
    scheduler_poll_interval_ms: int
    task_timeout_seconds: int
    workflow_timeout_seconds: int | None
    db_pool_size: int
    enable_recovery: bool
    enable_cron_scheduling: bool
    cron_poll_interval_seconds: int
    cron_max_catchup_executions: int
    cron_enable_recovery: bool
    cron_recovery_interval_seconds: int
    cron_lost_threshold_minutes: int
    cron_max_recovery_age_seconds: int
    cron_max_recovery_attempts: int

    def __init__(
        self,
        max_concurrent_tasks: int | None = None,
        scheduler_poll_interval_ms: int | None = None,
        task_timeout_seconds: int | None = None,
        workflow_timeout_seconds: int | None = None,
        db_pool_size: int | None = None,
        enable_recovery: bool | None = None,
        enable_cron_scheduling: bool | None = None,
        cron_poll_interval_seconds: int | None = None,
        cron_max_catchup_executions: int | None = None,
        cron_enable_recovery: bool | None = None,
        cron_recovery_interval_seconds: int | None = None,
        cron_lost_threshold_minutes: int | None = None,
        cron_max_recovery_age_seconds: int | None = None,
        cron_max_recovery_attempts: int | None = None,
        pipeline_timeout_seconds: int | None = None,
    ) -> None:
        given = dict(locals())
        given.pop("self")
        if given.pop("pipeline_timeout_seconds") is not None and workflow_timeout_seconds is None:
            given["workflow_timeout_seconds"] = pipeline_timeout_seconds
        for key, default in _DEFAULTS.items():
            value = given[key]
            if value is None:
                value = default
            elif isinstance(default, bool):
                value = bool(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Invalid configuration: {key} must be a whole number >= 0")
            setattr(self, key, value)
        if self.max_concurrent_tasks < 1:
            raise ValueError("Invalid configuration: max_concurrent_tasks must be at least 1")

    @property
    def pipeline_timeout_seconds(self) -> int | None:
        """cloaca 0.3.1's name of ``workflow_timeout_seconds``."""
        return self.workflow_timeout_seconds

    @pipeline_timeout_seconds.setter
    def pipeline_timeout_seconds(self, value: int | None) -> None:
        self.workflow_timeout_seconds = value

    @staticmethod
    def default() -> DefaultRunnerConfig:
        return DefaultRunnerConfig()

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _DEFAULTS}

    def __repr__(self) -> str:
        return (
            f"DefaultRunnerConfig(max_concurrent_tasks={self.max_concurrent_tasks}, "
            f"enable_cron_scheduling={str(self.enable_cron_scheduling).lower()}, "
            f"db_pool_size={self.db_pool_size})"
        )
