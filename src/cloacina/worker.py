"""A long-running worker process: ``cloacina worker --db URL`` runs this.

It executes tasks of every workflow it knows — the packages registered in the database (for
its tenant), and the embedded workflows of the modules it was given — until SIGTERM or
SIGINT. Then it stops claiming, lets running tasks finish within the grace period, hands back
the ones that do not, and marks itself stopped in the ``workers`` table.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from cloacina.runner import DefaultRunner

log = logging.getLogger("cloacina.worker")


def _without_password(url: str) -> str:
    """The URL as it may appear in logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def serve(
    url: str,
    *,
    modules: Sequence[str] = (),
    stop: threading.Event | None = None,
    on_ready: Callable[[DefaultRunner], object] | None = None,
    install_signal_handlers: bool = True,
    **settings: Any,
) -> int:
    """Run a worker until ``stop`` is set or SIGTERM/SIGINT arrives; returns an exit code.

    ``settings`` are :class:`DefaultRunner` keywords (``tenant``, ``max_concurrent_tasks``,
    ``shutdown_grace``, ``poll_interval``, ...).
    """
    for module in modules:
        importlib.import_module(module)
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    if install_signal_handlers and threading.current_thread() is threading.main_thread():

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handle)
    try:
        with DefaultRunner(url, execute_tasks=True, **settings) as runner:
            log.info(
                "worker %s running (database %s, tenant %s)",
                runner.worker_id,
                _without_password(url),
                runner.tenant,
            )
            if on_ready is not None:
                on_ready(runner)
            while not stop.wait(0.5):
                pass
            log.info("worker %s stopping: finishing running tasks", runner.worker_id)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
