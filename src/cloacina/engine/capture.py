"""Capturing what a task body prints and logs, per attempt, bounded, in chunks.

While a body runs, a context variable names its :class:`AttemptLog`. ``sys.stdout`` and
``sys.stderr`` are wrapped once by a :class:`RoutingStream` that copies each write to the log
named by that variable (and always passes it on to the stream it wraps, so the terminal, a
pytest capture or a rich console see what they saw before); logging records made inside a
body are copied the same way, by a wrapper of the log record factory (not a handler on the
root logger: that would make ``logging.basicConfig()`` a no-op for the application, and hide
``logging.lastResort``). A record is captured if its logger lets it through (its level),
whatever the handlers do with it. A ``def`` body sets the variable in its worker
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
import traceback
from collections.abc import Callable
from typing import Any, TextIO

STDOUT, STDERR, LOGGING = "stdout", "stderr", "log"

#: A captured piece of output: ``(stream, created_at, text)``.
Chunk = tuple[str, float, str]

#: How a logging record reads in a task's log: ``2024-05-01 12:00:00,123 INFO name: text``.
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


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


#: A logging handler writing a record to a stream: the record is in the log already.
_HANDLER_WRITE = logging.StreamHandler.emit.__code__


class RoutingStream:
    """``sys.stdout`` or ``sys.stderr``: each write goes to the wrapped stream and, inside a
    task body, to that body's log too (unless a logging handler writes a record, which the
    log has as a record already). Everything else is the wrapped stream's."""

    def __init__(self, target: TextIO, stream: str) -> None:
        self._target = target
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._target

    def write(self, text: str) -> int:
        log = _current.get()
        if (
            log is not None
            and isinstance(text, str)
            and sys._getframe(1).f_code is not _HANDLER_WRITE
        ):
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


def format_record(record: logging.LogRecord) -> str:
    """A record as a line of a task's log (with its traceback, if any), without touching
    the record (the handlers format it their own way)."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the message: show both, never fail
        message = f"{record.msg!r} % {record.args!r}"
    stamp = time.strftime(_TIME_FORMAT, time.localtime(record.created))
    text = f"{stamp},{int(record.msecs):03d} {record.levelname} {record.name}: {message}"
    if record.exc_info and record.exc_info[0] is not None:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.stack_info:
        text += "\n" + record.stack_info.rstrip("\n")
    return text + "\n"


class _RecordFactory:
    """Wraps the log record factory: a record made inside a task body goes to its log."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        log = _current.get()
        if log is not None:
            log.write(LOGGING, format_record(record))
        return record


_lock = threading.Lock()
_users = 0
#: Our wrapper, while it is part of the record factory (perhaps wrapped in turn by someone).
_factory: _RecordFactory | None = None


def _wrap() -> None:
    for name, stream in (("stdout", STDOUT), ("stderr", STDERR)):
        current = getattr(sys, name)
        if current is not None and not isinstance(current, RoutingStream):
            setattr(sys, name, RoutingStream(current, stream))


def _wrapped() -> bool:
    return type(sys.stdout) is RoutingStream and type(sys.stderr) is RoutingStream


def install() -> None:
    """Start routing (reference counted: every engine that runs bodies installs once)."""
    global _users, _factory
    with _lock:
        _users += 1
        _wrap()
        if _factory is None:
            _factory = _RecordFactory(logging.getLogRecordFactory())
            logging.setLogRecordFactory(_factory)


def uninstall() -> None:
    """One user less; the last one puts the streams and the record factory back as they
    were (what someone replaced or wrapped meanwhile is left alone: our part of it only
    passes things through outside a body)."""
    global _users, _factory
    with _lock:
        _users = max(0, _users - 1)
        if _users:
            return
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, RoutingStream):
                setattr(sys, name, current.wrapped)
        if _factory is not None and logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_factory.wrapped)
            _factory = None


def begin(log: AttemptLog) -> contextvars.Token[AttemptLog | None]:
    """A body starts: its output goes to ``log`` until :func:`end`. If someone replaced the
    streams since :func:`install` (pytest does between a test's phases), the routing is put
    back first."""
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
    "format_record",
    "install",
    "uninstall",
]
