"""Prometheus metrics of a runner: ``runner.metrics_text()`` (what ``/metrics`` serves) and
``runner.metrics_registry()`` (for ``prometheus_client.start_http_server``).

The engine counts tasks, runs, retries and recoveries as it commits them
(:class:`~cloacina.observability.metrics.EngineMetrics`); the gauges here are read at each
scrape: running tasks, the ready backlog and live workers (two bounded count queries), the
database pool, package processes and their resident memory (``/proc``), and this process's
CPU and memory (prometheus-client's ``ProcessCollector``). Nothing secret is exported: no
URL, key or context value is a label.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cloacina.errors import UnavailableError
from cloacina.observability.metrics import SERVER_EXTRA, GaugeFamily

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

    from cloacina.engine.engine import Engine
    from cloacina.settings import Settings
    from cloacina.store.base import Store

log = logging.getLogger("cloacina.metrics")

#: The ready backlog gauge counts up to this many tasks (a scrape stays cheap).
BACKLOG_LIMIT = 10_000

_SETUP = threading.Lock()


class MetricsServer:
    """A running metrics endpoint (:meth:`MetricsService.serve_metrics`)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class MetricsService:
    """Metrics of a :class:`~cloacina.runner.DefaultRunner` (a mixin: the runner provides
    the attributes declared here)."""

    store: Store
    settings: Settings
    execute_tasks: bool
    _engine: Engine

    def metrics_registry(self) -> CollectorRegistry:
        """This runner's own Prometheus registry, with every metric on it. Raises
        :class:`~cloacina.errors.UnavailableError` without prometheus-client."""
        with _SETUP:  # two first scrapes at once must not make two registries
            metrics = self._engine.enable_metrics()
            if metrics is None:
                raise UnavailableError(
                    f"metrics need the prometheus-client library, which is not installed: "
                    f"{SERVER_EXTRA}"
                )
            if not metrics.process_collector:
                from prometheus_client import ProcessCollector

                metrics.scrape.source = self._gauges
                ProcessCollector(namespace="cloacina", registry=metrics.registry)
                metrics.process_collector = True
        return metrics.registry

    def metrics_text(self) -> bytes:
        """Every metric of this runner in Prometheus text format (what ``/metrics`` serves):
        ``cloacina_tasks_finished_total``, ``cloacina_runs_finished_total``,
        ``cloacina_task_duration_seconds``, ``cloacina_task_queue_wait_seconds``,
        ``cloacina_task_retries_total``, ``cloacina_task_recoveries_total``,
        ``cloacina_running_tasks``, ``cloacina_ready_tasks``, ``cloacina_live_workers``,
        ``cloacina_db_pool_*``, ``cloacina_package_processes``,
        ``cloacina_package_process_resident_bytes``, ``cloacina_process_*``. Raises
        :class:`~cloacina.errors.UnavailableError` without prometheus-client
        (``pip install 'cloacina[server]'``)."""
        registry = self.metrics_registry()  # first: it says what to install
        from prometheus_client import generate_latest

        return generate_latest(registry)

    def serve_metrics(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve this runner's metrics over HTTP (any path, Prometheus text) on a daemon
        thread, at ``host:port`` (port 0: any free port; see :attr:`MetricsServer.port`).
        Raises :class:`~cloacina.errors.UnavailableError` without prometheus-client, and
        ``OSError`` if the address cannot be bound."""
        registry = self.metrics_registry()  # first: it says what to install
        from prometheus_client import start_http_server

        server, thread = start_http_server(port, addr=host, registry=registry)
        return MetricsServer(server, thread)

    def _gauges(self) -> Iterator[GaugeFamily]:
        engine = self._engine
        self._resolve_waits()
        if self.execute_tasks:
            yield GaugeFamily(
                "cloacina_running_tasks",
                "Tasks this process is running now",
                samples=[((), float(len(engine._running)))],
            )
            yield GaugeFamily(
                "cloacina_task_slots",
                "Tasks this process may run at once (max_concurrent_tasks)",
                samples=[((), float(self.settings.max_concurrent_tasks))],
            )
        up = 1.0
        try:
            backlog = self.store.ready_backlog(time.time(), BACKLOG_LIMIT)
            live = self.store.count_live_workers(self.settings.stale_claim_threshold)
        except Exception as exc:  # the database may be down: say so, keep the rest
            log.warning("metrics: could not read the database: %s", exc)
            up = 0.0
        else:
            yield GaugeFamily(
                "cloacina_ready_tasks",
                f"Tasks ready to start now, in this tenant (counted up to {BACKLOG_LIMIT})",
                samples=[((), float(backlog))],
            )
            yield GaugeFamily(
                "cloacina_live_workers",
                "Workers whose heartbeat is within the stale-claim threshold",
                samples=[((), float(live))],
            )
        yield GaugeFamily(
            "cloacina_database_up",
            "Whether the database answered this scrape's reads (1) or not (0)",
            samples=[((), up)],
        )
        pool = self.store.pool_status()
        if pool is not None:
            yield GaugeFamily(
                "cloacina_db_pool_connections_in_use",
                "Database connections handed out by the pool now",
                samples=[((), float(pool.in_use))],
            )
            yield GaugeFamily(
                "cloacina_db_pool_size",
                "Connections the database pool keeps (pool_size)",
                samples=[((), float(pool.size))],
            )
            yield GaugeFamily(
                "cloacina_db_pool_overflow",
                "Connections open beyond pool_size now (up to max_overflow)",
                samples=[((), float(pool.overflow))],
            )
        loader = engine.loader
        if loader is not None:
            counts: dict[tuple[str, str], float] = {}
            memory: dict[tuple[str, str], float] = {}
            for package, version, pid in loader.process_ids():
                key = (package, version)
                counts[key] = counts.get(key, 0.0) + 1
                resident = resident_bytes(pid)
                if resident is not None:
                    memory[key] = memory.get(key, 0.0) + resident
            yield GaugeFamily(
                "cloacina_package_processes",
                "Worker processes of registered packages, by package and version",
                ("package", "version"),
                sorted(counts.items()),
            )
            yield GaugeFamily(
                "cloacina_package_process_resident_bytes",
                "Resident memory of the worker processes of a package version (Linux)",
                ("package", "version"),
                sorted(memory.items()),
            )

    def _resolve_waits(self) -> None:
        """Observe the queue waits of first attempts this process started without seeing
        them become ready: their ready times are read from the database now."""
        metrics = self._engine.metrics
        unseen = metrics.take_unseen() if metrics is not None else []
        if metrics is None or not unseen:
            return
        try:
            ready = self.store.ready_times([(eid, tid) for eid, tid, _wf, _at in unseen])
        except Exception as exc:  # the database may be down: these waits go unmeasured
            log.warning("metrics: could not read when %d tasks became ready: %s", len(unseen), exc)
            return
        for eid, tid, workflow, started in unseen:
            since = ready.get((eid, tid))
            if since is not None:
                metrics.observe_wait(workflow, started - since)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int) -> float | None:
    """A process's resident memory from ``/proc/<pid>/statm`` (None where there is no
    ``/proc``, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return float(int(f.read().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError):
        return None
