"""``data_processing``: collect_data -> process_data -> generate_report.

A ``@packaged_workflow`` ships in the ``simple_demo`` package: ``cloacina package build``
validates it, vendors its dependencies and writes ``dist/simple_demo-1.0.0.cloacina``; a
runner that registers the archive runs these tasks in the package's own processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime

from cloacina import Context, RetryPolicy, TaskError, packaged_workflow, task

#: Seconds each task takes, so that the live progress is visible (0 in unit tests).
STEP_DELAY = float(os.environ.get("SIMPLE_DEMO_STEP_DELAY", "0.4"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@packaged_workflow(
    name="data_processing",
    package="simple_demo",
    description="Data processing workflow",
    author="Your Team",
)
class data_processing:
    """Gather records, validate them, and report on the result."""

    @task(id="collect_data", dependencies=[], retry=RetryPolicy(max_attempts=2))
    async def collect_data(context: Context) -> None:
        """Simulate gathering data from an external source (1,000 records)."""
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
        """Validate and transform the collected data: 95% of the records pass."""
        raw = context.get("raw_data")
        if raw is None:
            raise TaskError("Missing raw_data", retryable=False)
        time.sleep(STEP_DELAY)
        original = int(raw["records"])
        context.insert(
            "processed_data",
            {
                "processed_records": original * 95 // 100,
                "original_count": original,
                "status": "validated",
            },
        )

    @task(dependencies=[process_data], retry=RetryPolicy(max_attempts=1), timeout=30)
    def generate_report(context: Context) -> None:
        """Create a summary report from the processed data."""
        processed = context.get("processed_data")
        if processed is None:
            raise TaskError("Missing processed_data", retryable=False)
        time.sleep(STEP_DELAY)
        total = int(processed["processed_records"])
        context.insert(
            "final_report",
            {
                "report_id": f"RPT_{int(time.time())}",
                "summary": {
                    "total_processed": total,
                    "success_rate": f"{round(100 * total / processed['original_count'])}%",
                },
                "generated_at": _now(),
            },
        )
