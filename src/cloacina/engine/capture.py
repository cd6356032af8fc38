"""Capturing what a task body prints and logs, per attempt, bounded, in chunks.

While a body runs, a context variable names its :class:`AttemptLog`. ``sys.stdout`` and
``sys.stderr`` are wrapped once by a :class:`RoutingStream` that copies each write to the log
named by that variable (and always passes it on to the stream it wraps, so the terminal, a
pytest capture or a rich console see what they saw before); a :class:`logging.Handler` on
the root logger copies records the same way. A ``def`` body sets the variable in its worker
thread, an ``async def`` body in its own asyncio task (each has its own copy of the
context), so two bodies running at once never get each other's lines. Writes outside a body
(the engine, the application) only pass through.

An attempt keeps its first ``limit`` bytes (UTF-8); what comes after is counted, and a
marker line at the end says how many bytes were dropped. Chunks wait in memory until the
engine writes them with its own transactions (:meth:`AttemptLog.take`).

Standard library only: a package's worker process captures its bodies with this module.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from typing import Any, TextIO

STDOUT, STDERR, LOGGING = "stdout", "stderr", "log"

#: A captured piece of output: ``(stream, created_at, text)``.
Chunk = tuple[str, float, str]

#: How a logging record reads in a task's log.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def dropped_marker(dropped: int, limit: int) -> str:
    """The line that ends a log cut at its bound."""
    return (
        f"[cloacina: {dropped} more bytes of output were dropped: an attempt keeps its first "
        f"{limit} bytes (setting max_log_bytes, env CLOACINA_MAX_LOG_BYTES)]\n"
    )


class AttemptLog:
    """The captured output of one attempt of one task: chunks not yet stored, and the
    bytes kept and dropped so far. Written from any thread; taken on the engine's."""

    __slots__ = (
        "_chunks",
        "_lock",
        "_newline",
        "attempt",
        "closed",
        "dropped",
        "execution_id",
        "kept",
        "limit",
        "task_id",
    )

    def __init__(self, execution_id: str, task_id: str, attempt: int, limit: int) -> None:
        self.execution_id = execution_id
        self.task_id = task_id
        self.attempt = attempt
        self.limit = limit
        self.kept = 0
        self.dropped = 0
        self.closed = False
        # [stream, created_at, parts]: consecutive writes to one stream share a chunk.
        self._chunks: list[list[Any]] = []
        self._lock = threading.Lock()
        self._newline = True  # whether the text kept so far ends a line

    @property
    def pending(self) -> bool:
        """Whether chunks wait to be stored (read without the lock: a hint)."""
        return bool(self._chunks)

    def write(self, stream: str, text: str, at: float | None = None) -> None:
        """Add ``text`` to ``stream``, within the bound (after :meth:`close`: ignored)."""
        if not text or self.closed:
            return
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        with self._lock:
            if self.closed:
                return
            room = self.limit - self.kept
            if size > room:
                if room <= 0:
                    self.dropped += size
                    return
                text = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
                kept = len(text.encode("utf-8", "surrogatepass"))
                self.dropped += size - kept
                size = kept
                if not text:
                    return
            self.kept += size
            self._newline = text.endswith("\n")
            chunks = self._chunks
            if chunks and chunks[-1][0] == stream:
                chunks[-1][2].append(text)
            else:
                chunks.append([stream, time.time() if at is None else at, [text]])

    def add_dropped(self, count: int) -> None:
        """Count bytes dropped elsewhere (by a package's process, under the same bound)."""
        if count > 0:
            with self._lock:
                self.dropped += count

    def take(self) -> list[Chunk]:
        """The chunks written since the last take, oldest first."""
        if not self._chunks:
            return []
        with self._lock:
            chunks, self._chunks = self._chunks, []
        return [(stream, at, "".join(parts)) for stream, at, parts in chunks]

    def close(self, *, marker: bool = True) -> None:
        """The attempt ended: later writes are ignored; with ``marker``, a log that was cut
        ends with a line saying how many bytes were dropped."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if marker and self.dropped:
                text = dropped_marker(self.dropped, self.limit)
                if not self._newline:
                    text = "\n" + text
                self._chunks.append([STDERR, time.time(), [text]])


_current: contextvars.ContextVar[AttemptLog | None] = contextvars.ContextVar(
    "cloacina_task_log", default=None
)


def current_log() -> AttemptLog | None:
    """The log of the body running in this thread or asyncio task, if any."""
    return _current.get()


class RoutingStream:
    """``sys.stdout`` or ``sys.stderr``: each write goes to the wrapped stream and, inside a
    task body, to that body's log too. Everything else is the wrapped stream's."""

    def __init__(self, target: TextIO, stream: str) -> None:
        self._target = target
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._target

    def write(self, text: str) -> int:
        log = _current.get()
        if log is not None and isinstance(text, str):
            log.write(self._stream, text)
        return self._target.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _TaskLogHandler(logging.Handler):
    """Copies records logged inside a task body to its log. Being a handler on the root
    logger, it would hide :data:`logging.lastResort` (used only where no handler exists),
    so where it is the only handler it passes records on to that, as before."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        log = _current.get()
        if log is not None:
            try:
                log.write(LOGGING, self.format(record) + "\n")
            except Exception:
                self.handleError(record)
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and self._alone(record):
            # Outside the task's capture: the record is in its log already.
            token = _current.set(None)
            try:
                last.handle(record)
            finally:
                _current.reset(token)

    def _alone(self, record: logging.LogRecord) -> bool:
        """Whether no other handler sees ``record`` (Logger.callHandlers' rule)."""
        found = logging.root.manager.loggerDict.get(record.name)
        logger: logging.Logger | None = found if isinstance(found, logging.Logger) else logging.root
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self:
                    return False
            if not logger.propagate:
                return True
            logger = logger.parent
        return True


_lock = threading.Lock()
_users = 0
_handler = _TaskLogHandler()


def _wrap() -> None:
    for name, stream in (("stdout", STDOUT), ("stderr", STDERR)):
        current = getattr(sys, name)
        if current is not None and not isinstance(current, RoutingStream):
            setattr(sys, name, RoutingStream(current, stream))
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)


def _wrapped() -> bool:
    return (
        type(sys.stdout) is RoutingStream
        and type(sys.stderr) is RoutingStream
        and _handler in logging.root.handlers
    )


def install() -> None:
    """Start routing (reference counted: every engine that runs bodies installs once)."""
    global _users
    with _lock:
        _users += 1
        _wrap()


def uninstall() -> None:
    """One user less; the last one puts the streams and the root logger back as they were
    (a stream someone replaced meanwhile is left alone)."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, RoutingStream):
                setattr(sys, name, current.wrapped)
        logging.getLogger().removeHandler(_handler)


def begin(log: AttemptLog) -> contextvars.Token[AttemptLog | None]:
    """A body starts: its output goes to ``log`` until :func:`end`. If someone replaced the
    streams or the root logger's handlers since :func:`install` (pytest does between a
    test's phases), the routing is put back first."""
    if not _wrapped():
        with _lock:
            if _users:
                _wrap()
    return _current.set(log)


def end(token: contextvars.Token[AttemptLog | None]) -> None:
    _current.reset(token)


__all__ = [
    "LOGGING",
    "STDERR",
    "STDOUT",
    "AttemptLog",
    "Chunk",
    "RoutingStream",
    "begin",
    "current_log",
    "dropped_marker",
    "end",
    "install",
    "uninstall",
]
