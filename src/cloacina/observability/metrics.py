"""A runner's Prometheus metrics, on a registry of its own.

:class:`EngineMetrics` holds the counters and histograms the engine updates as it records
outcomes: plain in-memory increments after each commit, never a database round trip. The
gauges (running tasks, ready backlog, live workers, the database pool, package processes)
are read when the metrics are scraped, through a :class:`ScrapeCollector` whose source the
runner supplies (:mod:`cloacina.service.metrics`). Every runner has its own
``CollectorRegistry`` (several runners may live in one process: a test's, a server's).

``prometheus-client`` is optional (the ``server`` extra) and imported only here, on first
use: without it :func:`metrics_available` is false and the engine collects nothing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from cloacina.engine.executor import Job, Outcome
    from cloacina.store.records import NewEvent, ReadyTask

log = logging.getLogger("cloacina.metrics")

#: What to install for metrics (named in the error of a runner without them).
SERVER_EXTRA = "pip install 'cloacina[server]'"

#: Buckets (seconds) of the task duration and queue wait histograms: from a millisecond (an
#: embedded task's bookkeeping) to an hour (a batch job).
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)

#: At most this many started tasks wait for their ready time to be read at the next scrape
#: (beyond that, between two scrapes, the oldest are not measured).
MAX_UNSEEN = 2000

#: At most this many tasks' ready times are remembered (tasks made ready here but claimed by
#: another worker are never looked up again; the oldest go first).
MAX_TRACKED = 10_000

# The events that finish a task, and the outcome label each counts as.
_TASK_END = {
    "task_completed": "completed",
    "task_failed": "failed",
    "task_skipped": "skipped",
    "task_abandoned": "failed",  # its worker stopped responding too often: the task failed
}
_RUN_END = {"execution_completed": "completed", "execution_failed": "failed"}


def metrics_available() -> bool:
    """Whether ``prometheus-client`` is installed (metrics are collected only then)."""
    return importlib.util.find_spec("prometheus_client") is not None


@dataclass(frozen=True)
class GaugeFamily:
    """A gauge read at scrape time: its name, help text, label names and samples (label
    values in the order of ``labels``, and the value)."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


class ScrapeCollector:
    """Turns :class:`GaugeFamily` values from ``source`` into Prometheus gauges, at each
    scrape. ``source`` reads what it needs (a count query, the pool, ``/proc``); a family it
    cannot read is left out (the source logs why). It is the registry's first collector, so
    what ``source`` observes into the histograms shows in the same scrape."""

    def __init__(self, source: Callable[[], Iterable[GaugeFamily]] | None = None) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are fixed and ours

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        for family in self.source() if self.source is not None else ():
            gauge = GaugeMetricFamily(family.name, family.help, labels=list(family.labels))
            for values, value in family.samples:
                gauge.add_metric(list(values), value)
            yield gauge


class EngineMetrics:
    """The counters and histograms of one engine, on the runner's own registry.

    Methods are called on the engine's loop only (after a transaction committed), so the
    bookkeeping here needs no lock; prometheus-client's values have their own.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        #: The gauges read at scrape time: the runner gives it a source (service/metrics).
        self.scrape = ScrapeCollector()
        registry.register(self.scrape)
        #: Whether the process collector is registered too.
        self.process_collector = False
        self.tasks_finished = Counter(
            "cloacina_tasks_finished",
            "Tasks that reached an end, by workflow and outcome (completed, failed, skipped)",
            ("workflow", "outcome"),
            registry=registry,
        )
        self.runs_finished = Counter(
            "cloacina_runs_finished",
            "Workflow runs this process finished, by workflow and outcome (completed, failed)",
            ("workflow", "outcome"),
            registry=registry,
        )
        self.task_duration = Histogram(
            "cloacina_task_duration_seconds",
            "Time from a task attempt's start to its end (attempts whose body ran)",
            ("workflow",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "cloacina_task_queue_wait_seconds",
            "Time from a task becoming ready (dependencies settled, retry due, run created, "
            "task recovered) to its start; a first attempt that became ready elsewhere is "
            "read from the database at the next scrape",
            ("workflow",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "cloacina_task_retries",
            "Task attempts that failed and were scheduled to run again, by workflow",
            ("workflow",),
            registry=registry,
        )
        self.recoveries = Counter(
            "cloacina_task_recoveries",
            "Tasks taken back from a worker that stopped responding, by workflow",
            ("workflow",),
            registry=registry,
        )
        # Label children, made once per label set (labels() takes a lock and builds a key).
        self._children: dict[tuple[object, ...], Any] = {}
        # When tasks and runs became ready, for the queue wait: (run, task) -> epoch seconds,
        # and run -> when it was created here (its root tasks are ready from then).
        self._ready_at: dict[tuple[str, str], float] = {}
        self._created: dict[str, float] = {}
        self._created_lock = threading.Lock()  # runs are created on the callers' threads
        #: First attempts started here whose becoming ready this process did not see (a run
        #: another process created, a dependency another worker ran): (run, task, workflow,
        #: start), resolved from the database at the next scrape. Appended on the engine's
        #: loop, taken on the scraper's thread (a deque does both safely).
        self.unseen: deque[tuple[str, str, str, float]] = deque(maxlen=MAX_UNSEEN)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def run_created(self, execution_id: str, at: float) -> None:
        """A run was scheduled in this process at ``at``: its roots are ready from then
        (any thread)."""
        with self._created_lock:
            _remember(self._created, execution_id, at)

    def record(
        self,
        events: Sequence[NewEvent],
        now: float,
        *,
        outcomes: Sequence[Outcome] = (),
        ready: Sequence[ReadyTask] = (),
        jobs: Sequence[Job] = (),
        names: dict[str, str] | None = None,
    ) -> None:
        """Count what a committed transaction did: its ``events`` (tasks and runs that
        ended, retries, recoveries), the ``outcomes`` it recorded (their durations), the
        tasks it made ready (``ready``) and those it started (``jobs``, their queue wait).
        ``names`` maps runs without an outcome here to their workflow's name."""
        runs = names if names is not None else {}
        latest: dict[str, float] = {}  # per run, the latest end among these outcomes
        for outcome in outcomes:
            claim = outcome.claim
            eid = claim.execution_id
            runs[eid] = claim.workflow_name
            finished = outcome.finished_at
            if outcome.kind != "skipped":  # a body ran (a skip by condition did not)
                self._child(self.task_duration, claim.workflow_name).observe(
                    max(0.0, finished - claim.started_at)
                )
            if finished > latest.get(eid, 0.0):
                latest[eid] = finished
        ready_at = self._ready_at
        for task in ready:
            # Ready since its last dependency ended (the commit only made it visible).
            eid = task.execution_id
            _remember(ready_at, (eid, task.task_id), latest.get(eid, now))
        for event in events:
            kind = event.event
            if kind == "task_started":
                continue  # the most common: counted through ``jobs``
            eid = event.execution_id
            name = runs.get(eid)
            if name is None:
                continue
            outcome_label = _TASK_END.get(kind)
            if outcome_label is not None:
                self._child(self.tasks_finished, name, outcome_label).inc()
            elif kind in _RUN_END:
                self._child(self.runs_finished, name, _RUN_END[kind]).inc()
                with self._created_lock:
                    self._created.pop(eid, None)
            elif kind == "task_retry_scheduled":
                self._child(self.retries, name).inc()
                if event.task_id is not None:
                    _remember(ready_at, (eid, event.task_id), event.created_at + _retry_in(event))
            elif kind == "task_recovered":
                self._child(self.recoveries, name).inc()
                if event.task_id is not None:
                    _remember(ready_at, (eid, event.task_id), event.created_at)
        for job in jobs:
            claim = job.claim
            since = ready_at.pop((claim.execution_id, claim.task_id), None)
            if since is None and claim.deps_total == 0 and claim.attempt == 1:
                with self._created_lock:
                    since = self._created.get(claim.execution_id)
            if since is not None:
                self._child(self.queue_wait, claim.workflow_name).observe(
                    max(0.0, claim.started_at - since)
                )
            elif claim.attempt == 1 and claim.recovery_count == 0:
                self.unseen.append(
                    (claim.execution_id, claim.task_id, claim.workflow_name, claim.started_at)
                )

    def take_unseen(self) -> list[tuple[str, str, str, float]]:
        """The unseen first attempts noted so far (see :attr:`unseen`), removed (any thread)."""
        taken = []
        while True:
            try:
                taken.append(self.unseen.popleft())
            except IndexError:
                return taken

    def observe_wait(self, workflow: str, seconds: float) -> None:
        """A queue wait found later (any thread: prometheus-client's values are locked)."""
        self.queue_wait.labels(workflow).observe(max(0.0, seconds))

    def text(self) -> bytes:
        """The registry in Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _remember(table: dict[Any, float], key: Any, value: float) -> None:
    table[key] = value
    if len(table) > MAX_TRACKED:
        del table[next(iter(table))]  # the oldest (dicts keep insertion order)


def _retry_in(event: NewEvent) -> float:
    try:
        return float(json.loads(event.detail or "{}").get("retry_in", 0.0))
    except (ValueError, TypeError, AttributeError):
        return 0.0
