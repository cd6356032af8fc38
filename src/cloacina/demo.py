"""The seed's demo pipeline as an embedded workflow: ``collect_data -> process_data ->
generate_report``.

Importing this module registers the workflow ``data_processing`` in the process; ``cloacina
demo`` runs it on a throw-away SQLite database, and ``cloacina run data_processing --module
cloacina.demo`` runs it on any database.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from cloacina.errors import TaskError
from cloacina.model.context import Context
from cloacina.model.retry import RetryPolicy
from cloacina.model.task import task
from cloacina.model.workflow import workflow

#: Seconds each demo task sleeps, so that progress is visible.
STEP_DELAY = 0.2


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@workflow(name="data_processing", description="Data processing workflow (the seed demo)")
class data_processing:
    """collect_data -> process_data -> generate_report."""

    @task(id="collect_data", dependencies=[], retry=RetryPolicy(max_attempts=2))
    async def collect_data(context: Context) -> None:
        """Simulate gathering records from an external source."""
        await asyncio.sleep(STEP_DELAY)
        context.insert(
            "raw_data",
            {"records": 1000, "source": "demo_database", "collected_at": _now()},
        )

    @task(
        id="process_data",
        dependencies=["collect_data"],
        retry=RetryPolicy(max_attempts=3, backoff="exponential", initial_delay=0.5),
    )
    def process_data(context: Context) -> None:
        """Validate and transform the collected records."""
        raw = context.get("raw_data")
        if raw is None:
            raise TaskError("missing raw_data: collect_data did not run", retryable=False)
        time.sleep(STEP_DELAY)
        original = int(raw["records"])
        context.insert(
            "processed_data",
            {
                "processed_records": original * 95 // 100,
                "original_count": original,
                "status": "validated",
                "processed_at": _now(),
            },
        )

    @task(id="generate_report", dependencies=["process_data"], retry=RetryPolicy(max_attempts=1))
    def generate_report(context: Context) -> None:
        """Summarise the processed records in a report."""
        processed = context.get("processed_data")
        if processed is None:
            raise TaskError("missing processed_data: process_data did not run", retryable=False)
        time.sleep(STEP_DELAY)
        total = int(processed["processed_records"])
        original = int(processed["original_count"])
        context.insert(
            "final_report",
            {
                "report_id": f"RPT_{int(time.time())}",
                "summary": {
                    "total_processed": total,
                    "success_rate": f"{round(100 * total / original)}%",
                },
                "generated_at": _now(),
            },
        )


__all__ = ["STEP_DELAY", "data_processing"]
