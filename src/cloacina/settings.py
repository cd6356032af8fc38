"""One settings object: every tunable of a runner or worker in one place.

:class:`Settings` is a frozen dataclass: each field carries its default, type, unit, bounds
and a line of help (:func:`spec`). Values come from keywords (``DefaultRunner(url,
poll_interval=0.2)``), from ``CLOACINA_*`` environment variables (``CLOACINA_POLL_INTERVAL=200ms``)
and from the command-line options generated from the fields (``--poll-interval``). Precedence:
a keyword or an option, then the environment, then the default; :attr:`Settings.sources` says
where each value came from. A value is checked once, here, the same for the API and the CLI:
a :class:`~cloacina.errors.SettingsError` names the setting, the value, the rule and the fix.

Durations are seconds; as text they may carry a unit: ``500ms``, ``2s``, ``5m``, ``2h``,
``30d``, ``1w``. This module is pure (no database, no click).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from cloacina.errors import SettingsError

ENV_PREFIX = "CLOACINA_"

# ---- durations -------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"30s"``, ``"5m"``, ``"2h"``, ``"30d"``, ``"1w"``, ``"250ms"``
    or plain seconds (``"90"``, ``"0.5"``). Raises ``ValueError`` for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number of seconds or a number with a unit, "
            "such as 30s, 5m, 2h, 30d (units: ms, s, m, h, d, w)"
        )
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: too large")
    return seconds


def fmt_span(seconds: float) -> str:
    """A duration as :func:`parse_duration` reads it: ``30d``, ``2h``, ``90s``, ``0.5s``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# ---- what a setting is -----------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """How one setting is read, checked and described."""

    help: str
    kind: Literal["int", "duration"]
    #: What the number counts: ``seconds`` for durations, else ``tasks``, ``connections``...
    unit: str
    minimum: float
    #: The minimum itself is refused (``> 0`` rather than ``>= 0``).
    above: bool = False
    #: Why the bound exists, for messages ("the engine would poll without pause").
    why: str = ""
    #: None is a value: what it means ("keep them"). Empty: None is refused.
    none_means: str = ""
    #: Only this backend uses it ("SQLite" or "PostgreSQL"); None: every backend.
    backend: str | None = None
    #: Further command-line spellings, kept from older versions (``--grace``).
    aliases: tuple[str, ...] = ()

    @property
    def optional(self) -> bool:
        return bool(self.none_means)


def _setting(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": Spec(**spec)})


def env_var(name: str) -> str:
    """The environment variable of setting ``name``: ``CLOACINA_POLL_INTERVAL``."""
    return ENV_PREFIX + name.upper()


def option_flag(name: str) -> str:
    """The command-line option of setting ``name``: ``--poll-interval``."""
    return "--" + name.replace("_", "-")


def keyword_source(name: str) -> str:
    return f"keyword {name}"


def option_source(name: str) -> str:
    return f"option {option_flag(name)}"


DEFAULT_SOURCE = "default"


# ---- the settings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Every setting of a runner or worker, checked. ``Settings()`` is all defaults;
    :meth:`resolve` adds the environment and records where each value came from."""

    max_concurrent_tasks: int = _setting(
        8, kind="int", unit="tasks", minimum=1, help="How many tasks run at once in a process."
    )
    poll_interval: float = _setting(
        0.5,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        why="at 0 the engine would look for work without pause, at 100% CPU",
        help="How often to look for ready work when not woken.",
    )
    heartbeat_interval: float = _setting(
        1.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        why="at 0 heartbeats would be written without pause",
        help="How often running tasks and the worker report they are alive.",
    )
    stale_claim_threshold: float = _setting(
        5.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        help="A task whose heartbeat is older than this is taken back and run again.",
    )
    max_map_items: int = _setting(
        1_000_000,
        kind="int",
        unit="items",
        minimum=1,
        help="A mapped task (map_over) over a longer list fails instead of starting.",
    )
    max_recoveries: int = _setting(
        3,
        kind="int",
        unit="recoveries",
        minimum=0,
        help="How often a task taken back from a lost worker is run again before it fails.",
    )
    shutdown_grace: float = _setting(
        30.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        aliases=("--grace",),
        help="On shutdown (SIGTERM, Ctrl-C), how long running tasks may take to finish "
        "before they are handed back to other workers.",
    )
    retention: float | None = _setting(
        None,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        none_means="keep them",
        help="Prune finished runs older than this, e.g. 30d.",
    )
    max_package_processes: int | None = _setting(
        None,
        kind="int",
        unit="processes",
        minimum=1,
        none_means="max_concurrent_tasks",
        help="How many processes each registered package may run its tasks in.",
    )
    busy_timeout: float = _setting(
        30.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        backend="SQLite",
        help="SQLite: how long a write waits for another process's lock before failing.",
    )
    pool_size: int = _setting(
        10,
        kind="int",
        unit="connections",
        minimum=1,
        backend="PostgreSQL",
        help="PostgreSQL: database connections a process keeps open.",
    )
    max_overflow: int = _setting(
        20,
        kind="int",
        unit="connections",
        minimum=0,
        backend="PostgreSQL",
        help="PostgreSQL: extra connections opened beyond pool_size under load, closed when "
        "returned.",
    )
    pool_timeout: float = _setting(
        30.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        why="at 0 every wait for a busy pool would fail at once",
        backend="PostgreSQL",
        help="PostgreSQL: how long to wait for a free connection when all are in use.",
    )
    connect_timeout: float = _setting(
        10.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        why="at 0 no connection could open",
        backend="PostgreSQL",
        help="PostgreSQL: how long to wait for a new connection to open.",
    )
    alert_timeout: float = _setting(
        5.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        above=True,
        why="at 0 no webhook could answer",
        help="How long a webhook may take to answer an alert before the attempt fails.",
    )
    alert_max_attempts: int = _setting(
        5,
        kind="int",
        unit="attempts",
        minimum=1,
        help="How many times an alert is sent to a webhook that fails before giving up.",
    )
    alert_retry_delay: float = _setting(
        2.0,
        kind="duration",
        unit="seconds",
        minimum=0,
        help="The wait before an alert's second attempt; it doubles for each further one.",
    )
    max_upload_bytes: int = _setting(
        100 * 1024 * 1024,
        kind="int",
        unit="bytes",
        minimum=1,
        help="The largest package the HTTP API accepts (cloacina serve); a larger upload is "
        "refused with 413 before it is read.",
    )
    max_log_bytes: int = _setting(
        1024 * 1024,
        kind="int",
        unit="bytes",
        minimum=0,
        help="How much of each task attempt's output (prints, logging records) is kept; "
        "the rest is dropped and counted in a marker line. 0 captures nothing.",
    )
    #: Where each value came from: ``default``, ``keyword poll_interval``,
    #: ``env CLOACINA_POLL_INTERVAL`` or ``option --poll-interval``.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        sources: dict[str, str] = {}
        for f in setting_fields():
            raw = getattr(self, f.name)
            source = self.sources.get(f.name) or (
                DEFAULT_SOURCE if raw == f.default else keyword_source(f.name)
            )
            sources[f.name] = source
            object.__setattr__(self, f.name, _convert(f.name, spec(f.name), raw, source))
        object.__setattr__(self, "sources", MappingProxyType(sources))
        if self.stale_claim_threshold <= self.heartbeat_interval:
            raise SettingsError(
                f"stale_claim_threshold ({fmt_span(self.stale_claim_threshold)}, from "
                f"{self.sources['stale_claim_threshold']}) must be longer than "
                f"heartbeat_interval ({fmt_span(self.heartbeat_interval)}, from "
                f"{self.sources['heartbeat_interval']}), or live tasks would be taken back from "
                "a healthy worker; raise the threshold to a few heartbeats (the defaults are "
                "5s and 1s)"
            )

    @classmethod
    def resolve(
        cls,
        given: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        base: Settings | None = None,
        source: Callable[[str], str] = keyword_source,
    ) -> Settings:
        """Settings from ``given`` (None values: not given), over ``base`` if one is passed,
        else over the ``CLOACINA_*`` variables of ``environ`` (default: ``os.environ``), over
        the defaults. ``source(name)`` names where a given value came from."""
        given = given or {}
        unknown = sorted(set(given) - set(setting_names()))
        if unknown:
            close = difflib.get_close_matches(unknown[0], setting_names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SettingsError(
                f"unknown setting {unknown[0]!r}.{hint} The settings are: "
                f"{', '.join(setting_names())}"
            )
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        if base is not None:
            values = base.values()
            sources = dict(base.sources)
        else:
            env = os.environ if environ is None else environ
            for name in setting_names():
                text = env.get(env_var(name), "")
                if text.strip():  # set but empty: as if not set
                    values[name] = text
                    sources[name] = f"env {env_var(name)}"
        for name, value in given.items():
            if value is not None:
                values[name] = value
                sources[name] = source(name)
        return cls(**values, sources=sources)

    def values(self) -> dict[str, Any]:
        """``{name: value}`` of every setting."""
        return {name: getattr(self, name) for name in setting_names()}

    def display(self, name: str) -> str:
        """The value of setting ``name`` as a person reads it: ``0.5s``, ``8``, ``keep them``."""
        return fmt_value(name, getattr(self, name))


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields of :class:`Settings` that are settings (all but ``sources``)."""
    return _FIELDS


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in _FIELDS)


def spec(name: str) -> Spec:
    """The :class:`Spec` of setting ``name``."""
    found: Spec = _BY_NAME[name].metadata["spec"]
    return found


def fmt_value(name: str, value: Any) -> str:
    """A value of setting ``name`` as a person reads it: ``0.5s``, ``8``, ``keep them``."""
    if value is None:
        return spec(name).none_means
    return fmt_span(value) if spec(name).kind == "duration" else str(value)


def default_display(name: str) -> str:
    """The default of setting ``name`` as a person reads it."""
    return fmt_value(name, _BY_NAME[name].default)


def _fail(name: str, value: Any, source: str, rule: str) -> SettingsError:
    return SettingsError(f"invalid setting {name}={value!r} (from {source}): {rule}")


def _fix(name: str) -> str:
    s = spec(name)
    if s.optional:
        return f"leave it unset to {s.none_means}"
    return f"the default is {default_display(name)}"


def _bound(name: str, s: Spec) -> str:
    low = fmt_span(s.minimum) if s.kind == "duration" else f"{s.minimum:g}"
    if s.kind == "duration":
        rule = f"must be longer than {low}" if s.above else f"must be {low} or longer"
    else:
        rule = f"must be above {low}" if s.above else f"must be {low} or more"
    why = f": {s.why}" if s.why else ""
    return f"{rule}{why}; {_fix(name)}"


def _convert(name: str, s: Spec, raw: Any, source: str) -> Any:
    """``raw`` (a keyword's value or an environment/option text) as the setting's type,
    checked against its bounds."""
    if raw is None:
        if s.optional:
            return None
        raise _fail(name, raw, source, f"needs a value; {_fix(name)}")
    value: float
    if s.kind == "int":
        if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
            value = int(raw)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            raise _fail(name, raw, source, f"must be a whole number of {s.unit}, such as 4")
    else:
        if isinstance(raw, timedelta):
            value = raw.total_seconds()
        elif isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = parse_duration(raw)
            except ValueError as exc:
                raise _fail(name, raw, source, str(exc)) from None
        else:
            raise _fail(
                name, raw, source, "must be a duration: seconds, a timedelta or text like 500ms"
            )
        if not math.isfinite(value):
            raise _fail(name, raw, source, "must be a finite number of seconds")
    if value < s.minimum or (s.above and value == s.minimum):
        raise _fail(name, raw, source, _bound(name, s))
    return value


_FIELDS: tuple[dataclasses.Field[Any], ...] = tuple(
    f for f in dataclasses.fields(Settings) if "spec" in f.metadata
)
_BY_NAME = {f.name: f for f in _FIELDS}
#: Every setting at its default (no environment read).
DEFAULTS = Settings()

__all__ = [
    "DEFAULTS",
    "Settings",
    "Spec",
    "env_var",
    "fmt_span",
    "fmt_value",
    "option_flag",
    "parse_duration",
    "setting_names",
    "spec",
]
