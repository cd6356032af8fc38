"""A small pool of daemon threads for ``def`` task bodies.

Unlike ``concurrent.futures.ThreadPoolExecutor`` its threads are daemons, so a process whose
runner was shut down does not wait at exit for a task body that overran its timeout (Python
cannot kill a thread). Threads start lazily; the pool grows past its size by one thread for
every body that is known to be stuck, so stuck bodies never starve new tasks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

Work = tuple[Callable[[Any], Any], Any, Callable[[Any], None]]


class TaskThreads:
    """``submit(fn, arg, done)`` runs ``done(fn(arg))`` on a daemon worker thread."""

    def __init__(self, size: int, name: str = "cloacina-task") -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._stuck = 0
        self._closed = False

    def submit(self, fn: Callable[[Any], Any], arg: Any, done: Callable[[Any], None]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the task thread pool is shut down")
            self._queue.put((fn, arg, done))
            waiting = self._queue.qsize()
            if self._idle < waiting and self._threads < self._size + self._stuck:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()

    def mark_stuck(self) -> None:
        """One body overran its timeout and still holds its thread: allow one more thread."""
        with self._lock:
            self._stuck += 1

    def unmark_stuck(self) -> None:
        with self._lock:
            self._stuck = max(0, self._stuck - 1)

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            with lock:
                self._idle += 1
            item = get()
            with lock:
                self._idle -= 1
            if item is None:
                return
            fn, arg, done = item
            done(fn(arg))

    def shutdown(self) -> None:
        """Let idle threads exit; busy ones end when their body returns (they are daemons)."""
        with self._lock:
            self._closed = True
            count = self._threads
        for _ in range(count):
            self._queue.put(None)
