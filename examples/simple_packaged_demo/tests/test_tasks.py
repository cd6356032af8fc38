"""Unit tests of each task, called directly with a plain Context, and of the whole workflow
run in-process on a temporary database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from simple_demo.workflows import data_processing

from cloacina import Context, DefaultRunner, TaskError


def test_collect_data_gathers_1000_records() -> None:
    ctx = Context()
    asyncio.run(data_processing.collect_data(ctx))
    assert ctx["raw_data"]["records"] == 1000
    assert ctx["raw_data"]["source"] == "demo_database"


def test_process_data_keeps_95_percent() -> None:
    ctx = Context({"raw_data": {"records": 1000}})
    data_processing.process_data(ctx)
    assert ctx["processed_data"]["processed_records"] == 950
    assert ctx["processed_data"]["original_count"] == 1000


def test_process_data_without_raw_data_fails_without_retry() -> None:
    with pytest.raises(TaskError) as info:
        data_processing.process_data(Context())
    assert not info.value.retryable


def test_generate_report_summarises() -> None:
    ctx = Context({"processed_data": {"processed_records": 950, "original_count": 1000}})
    data_processing.generate_report(ctx)
    report = ctx["final_report"]
    assert report["report_id"].startswith("RPT_")
    assert report["summary"] == {"total_processed": 950, "success_rate": "95%"}


def test_the_whole_workflow_runs(tmp_path: Path) -> None:
    with DefaultRunner(f"sqlite:///{tmp_path}/test.db") as runner:
        result = runner.execute("data_processing")
    assert result.status == "completed", result.error
    assert result.final_context["final_report"]["summary"]["total_processed"] == 950
    assert list(result.tasks) == ["collect_data", "process_data", "generate_report"]
