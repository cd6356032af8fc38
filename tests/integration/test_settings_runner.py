"""``DefaultRunner`` reads its settings through the one settings object: bad values are refused
before the database is touched (issue 9.23: ``poll_interval=0`` used to spin at 100% CPU),
``CLOACINA_*`` variables apply under the keywords, and ``settings=`` passes them whole."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cloacina import DefaultRunner
from cloacina.errors import SettingsError
from cloacina.settings import Settings


@pytest.mark.parametrize(
    ("keywords", "fragment"),
    [
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"poll_interval": -0.5}, "poll_interval=-0.5"),
        ({"heartbeat_interval": 0}, "heartbeat_interval=0"),
        ({"max_concurrent_tasks": 0}, "max_concurrent_tasks=0"),
        ({"heartbeat_interval": 2.0, "stale_claim_threshold": 2.0}, "stale_claim_threshold (2s"),
        ({"pool_timeout": 0}, "pool_timeout=0"),
        ({"retention": timedelta(0)}, "retention=datetime.timedelta(0)"),
    ],
)
def test_bad_settings_are_refused_before_the_database_is_opened(
    tmp_path: Path, keywords: dict[str, object], fragment: str
) -> None:
    path = tmp_path / "runs.db"
    with pytest.raises(SettingsError, match="from keyword") as info:
        DefaultRunner(f"sqlite:///{path}", **keywords)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)  # as bad runner settings always raised
    assert not path.exists()


def test_zero_poll_interval_from_the_environment_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOACINA_POLL_INTERVAL", "0")
    with pytest.raises(SettingsError, match="from env CLOACINA_POLL_INTERVAL"):
        DefaultRunner(f"sqlite:///{tmp_path / 'runs.db'}")


def test_environment_under_keywords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOACINA_MAX_CONCURRENT_TASKS", "3")
    monkeypatch.setenv("CLOACINA_POLL_INTERVAL", "200ms")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with DefaultRunner(url, poll_interval=0.05) as runner:
        assert runner.settings.max_concurrent_tasks == 3
        assert (
            runner.settings.sources["max_concurrent_tasks"] == "env CLOACINA_MAX_CONCURRENT_TASKS"
        )
        assert runner.settings.poll_interval == 0.05
        assert runner.settings.sources["poll_interval"] == "keyword poll_interval"
        worker = next(w for w in runner.store.list_workers() if w.id == runner.worker_id)
        assert worker.max_tasks == 3


def test_a_settings_object_with_keywords_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOACINA_MAX_RECOVERIES", "9")  # a settings object is taken as it is
    base = Settings(max_concurrent_tasks=2, retention=3600.0)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with DefaultRunner(url, settings=base, poll_interval=0.05) as runner:
        assert runner.settings.max_concurrent_tasks == 2
        assert runner.settings.retention == 3600.0
        assert runner.settings.max_recoveries == 3
        assert runner.settings.poll_interval == 0.05
