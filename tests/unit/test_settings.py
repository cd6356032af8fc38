"""The one settings object: parsing, precedence (keyword/option > environment > default),
the source of each value, and one set of checks whose messages name the setting, the value,
the rule and the fix (issue 8.8; issue 9.23: a zero poll interval is refused)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cloacina.errors import CloacinaError, SettingsError
from cloacina.settings import (
    DEFAULTS,
    Settings,
    env_var,
    option_flag,
    option_source,
    setting_names,
    spec,
)

NAMES = setting_names()


def test_defaults_are_the_documented_ones() -> None:
    assert Settings() == DEFAULTS
    assert (DEFAULTS.max_concurrent_tasks, DEFAULTS.poll_interval) == (8, 0.5)
    assert (DEFAULTS.heartbeat_interval, DEFAULTS.stale_claim_threshold) == (1.0, 5.0)
    assert (DEFAULTS.pool_size, DEFAULTS.max_overflow, DEFAULTS.pool_timeout) == (10, 20, 30.0)
    assert DEFAULTS.retention is None and DEFAULTS.max_package_processes is None
    assert set(DEFAULTS.sources.values()) == {"default"}


def test_every_setting_is_described() -> None:
    for name in NAMES:
        s = spec(name)
        assert s.help.endswith(".") and s.unit, name
        assert env_var(name) == "CLOACINA_" + name.upper()
        assert option_flag(name) == "--" + name.replace("_", "-")


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.poll_interval = 0.1  # type: ignore[misc]


def test_environment_values_are_parsed() -> None:
    settings = Settings.resolve(
        environ={
            "CLOACINA_MAX_CONCURRENT_TASKS": "4",
            "CLOACINA_POLL_INTERVAL": "0.2",
            "CLOACINA_HEARTBEAT_INTERVAL": "500ms",
            "CLOACINA_STALE_CLAIM_THRESHOLD": "2s",
            "CLOACINA_RETENTION": "1d",
            "CLOACINA_POOL_SIZE": " 3 ",
            "CLOACINA_DB": "sqlite:///elsewhere.db",  # not a setting: the CLI reads it
            "CLOACINA_MAX_OVERFLOW": "",  # set but empty: as if not set
        }
    )
    assert settings.max_concurrent_tasks == 4
    assert settings.poll_interval == 0.2
    assert settings.heartbeat_interval == 0.5
    assert settings.stale_claim_threshold == 2.0
    assert settings.retention == 86400.0
    assert settings.pool_size == 3
    assert settings.max_overflow == 20
    assert settings.sources["poll_interval"] == "env CLOACINA_POLL_INTERVAL"
    assert settings.sources["max_overflow"] == "default"


def test_keywords_take_numbers_timedeltas_and_text() -> None:
    settings = Settings.resolve(
        {"poll_interval": 1, "retention": timedelta(days=30), "shutdown_grace": "2m"}, environ={}
    )
    assert settings.poll_interval == 1.0 and isinstance(settings.poll_interval, float)
    assert settings.retention == 30 * 86400.0
    assert settings.shutdown_grace == 120.0
    assert settings.display("retention") == "30d"
    assert settings.display("max_package_processes") == "max_concurrent_tasks"


def test_keyword_beats_environment_beats_default() -> None:
    env = {"CLOACINA_POLL_INTERVAL": "2s", "CLOACINA_MAX_RECOVERIES": "7"}
    settings = Settings.resolve({"poll_interval": 0.1, "pool_size": None}, environ=env)
    assert settings.poll_interval == 0.1
    assert settings.sources["poll_interval"] == "keyword poll_interval"
    assert settings.max_recoveries == 7
    assert settings.sources["max_recoveries"] == "env CLOACINA_MAX_RECOVERIES"
    assert settings.pool_size == 10  # None: not given
    assert settings.sources["pool_size"] == "default"


def test_options_are_named_as_options() -> None:
    settings = Settings.resolve({"shutdown_grace": "5s"}, environ={}, source=option_source)
    assert settings.sources["shutdown_grace"] == "option --shutdown-grace"


def test_a_settings_object_is_taken_as_is_and_keywords_override_it() -> None:
    base = Settings.resolve({"max_concurrent_tasks": 2}, environ={})
    settings = Settings.resolve(
        {"poll_interval": 0.05}, base=base, environ={"CLOACINA_MAX_RECOVERIES": "9"}
    )
    assert settings.max_concurrent_tasks == 2
    assert settings.sources["max_concurrent_tasks"] == "keyword max_concurrent_tasks"
    assert settings.poll_interval == 0.05
    assert settings.max_recoveries == 3  # the base's value; the environment is not read


def test_errors_are_value_errors_and_cloacina_errors() -> None:
    with pytest.raises(SettingsError) as info:
        Settings(poll_interval=0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, CloacinaError)


@pytest.mark.parametrize(
    ("given", "fragments"),
    [
        ({"poll_interval": 0}, ["poll_interval=0", "longer than 0s", "100% CPU", "0.5s"]),
        ({"poll_interval": -1.0}, ["poll_interval=-1.0", "longer than 0s"]),
        ({"heartbeat_interval": 0}, ["heartbeat_interval=0", "longer than 0s"]),
        ({"max_concurrent_tasks": 0}, ["max_concurrent_tasks=0", "1 or more", "default is 8"]),
        ({"max_concurrent_tasks": 2.5}, ["max_concurrent_tasks=2.5", "whole number of tasks"]),
        ({"max_concurrent_tasks": True}, ["max_concurrent_tasks=True", "whole number"]),
        ({"max_recoveries": -1}, ["max_recoveries=-1", "0 or more"]),
        ({"max_overflow": -1}, ["max_overflow=-1", "0 or more", "default is 20"]),
        ({"pool_timeout": "0s"}, ["pool_timeout='0s'", "longer than 0s"]),
        ({"retention": 0}, ["retention=0", "leave it unset to keep them"]),
        ({"poll_interval": "soon"}, ["poll_interval='soon'", "invalid duration 'soon'"]),
        ({"poll_interval": float("nan")}, ["poll_interval=nan", "finite"]),
        ({"poll_interval": [1]}, ["poll_interval=[1]", "must be a duration"]),
        ({"poll_intervall": 1}, ["unknown setting 'poll_intervall'", "'poll_interval'"]),
    ],
)
def test_bad_values_are_refused_naming_setting_value_rule_and_fix(
    given: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.resolve(given, environ={})
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="from env CLOACINA_MAX_CONCURRENT_TASKS") as info:
        Settings.resolve(environ={"CLOACINA_MAX_CONCURRENT_TASKS": "four"})
    assert "max_concurrent_tasks='four'" in str(info.value)


def test_stale_threshold_must_exceed_the_heartbeat() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.resolve(
            {"heartbeat_interval": 5}, environ={"CLOACINA_STALE_CLAIM_THRESHOLD": "2s"}
        )
    message = str(info.value)
    assert "stale_claim_threshold (2s, from env CLOACINA_STALE_CLAIM_THRESHOLD)" in message
    assert "heartbeat_interval (5s, from keyword heartbeat_interval)" in message
    assert "raise the threshold" in message
    with pytest.raises(SettingsError):
        Settings(heartbeat_interval=1.0, stale_claim_threshold=1.0)  # equal is not longer


@given(
    heartbeat=st.floats(min_value=0.001, max_value=1e6),
    stale=st.floats(min_value=0.001, max_value=1e6),
)
def test_accepted_exactly_when_the_threshold_is_longer(heartbeat: float, stale: float) -> None:
    try:
        Settings(heartbeat_interval=heartbeat, stale_claim_threshold=stale)
    except SettingsError:
        assert stale <= heartbeat
    else:
        assert stale > heartbeat


@given(
    keywords=st.sets(st.sampled_from(NAMES)),
    environment=st.sets(st.sampled_from(NAMES)),
)
def test_each_value_comes_from_the_strongest_source_given(
    keywords: set[str], environment: set[str]
) -> None:
    # Values valid for every setting, and different per source, to see which one won; the
    # threshold stays above every heartbeat used.
    def value(name: str, source: str) -> object:
        if name == "stale_claim_threshold":
            return {"keyword": 30, "env": "20"}[source]
        return {"keyword": 3, "env": "2"}[source]

    settings = Settings.resolve(
        {name: value(name, "keyword") for name in keywords},
        environ={env_var(name): str(value(name, "env")) for name in environment},
    )
    for name in NAMES:
        if name in keywords:
            assert settings.sources[name] == f"keyword {name}"
            assert getattr(settings, name) == value(name, "keyword")
        elif name in environment:
            assert settings.sources[name] == f"env {env_var(name)}"
            assert getattr(settings, name) == float(str(value(name, "env")))
        else:
            assert settings.sources[name] == "default"
            assert getattr(settings, name) == getattr(DEFAULTS, name)


@given(st.integers(min_value=-1000, max_value=1000))
def test_max_concurrent_tasks_bound(n: int) -> None:
    try:
        settings = Settings(max_concurrent_tasks=n)
    except SettingsError:
        assert n < 1
    else:
        assert n >= 1 and settings.max_concurrent_tasks == n


@given(st.integers(min_value=1, max_value=10**7))
def test_durations_in_milliseconds_read_back(ms: int) -> None:
    settings = Settings.resolve(environ={"CLOACINA_SHUTDOWN_GRACE": f"{ms}ms"})
    assert settings.shutdown_grace == pytest.approx(ms / 1000)


# ---- the generated options ------------------------------------------------------------------
def test_generated_options_reach_settings_over_the_environment() -> None:
    from cloacina.cli.options import resolve_settings, settings_options

    seen: list[Settings] = []

    @click.command()
    @settings_options
    @click.pass_context
    def command(ctx: click.Context) -> None:
        seen.append(resolve_settings(ctx))

    env = {"CLOACINA_POLL_INTERVAL": "2s", "CLOACINA_MAX_RECOVERIES": "5"}
    res = CliRunner().invoke(command, ["--poll-interval", "250ms", "--grace", "1m"], env=env)
    assert res.exit_code == 0, res.output
    settings = seen[0]
    assert settings.poll_interval == 0.25
    assert settings.sources["poll_interval"] == "option --poll-interval"
    assert settings.shutdown_grace == 60.0  # --grace: the older spelling of --shutdown-grace
    assert settings.max_recoveries == 5
    assert settings.sources["max_recoveries"] == "env CLOACINA_MAX_RECOVERIES"

    res = CliRunner().invoke(command, ["--poll-interval", "0"])
    assert res.exit_code == 2
    assert "poll_interval='0' (from option --poll-interval)" in res.output

    res = CliRunner().invoke(command, ["--help"])
    for name in NAMES:
        assert option_flag(name) in res.output and env_var(name) in res.output, name
