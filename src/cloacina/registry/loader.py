"""Running a package's tasks in its own processes.

Each package version gets a pool of worker processes (``cloacina.packaging.worker serve``),
started lazily on first use and reused. The package's ``lib/`` is on those processes' path and
nowhere else, so packages cannot clash over dependencies or globals; besides ``lib/`` they see
only the standard library and ``cloacina`` (not the runner's site-packages). A worker that crashes
fails only the task it was running (which then follows its retry policy); a task that runs
past its timeout gets its process killed. Command tasks run the package's executable with the
context as JSON on stdin and read their updates as JSON from stdout, in a process group of
their own (see :mod:`cloacina.packaging.supervise`). Every process started here dies with the
runner, even one killed with ``kill -9``.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloacina.engine.capture import LOGGING, STDERR, STDOUT, AttemptLog
from cloacina.engine.executor import (
    COMPLETED,
    FAILED,
    SKIPPED,
    Job,
    Outcome,
    build_context,
    condition_skip,
    instance_outcome,
    timeout_outcome,
)
from cloacina.errors import PackageError, RemoteTaskError
from cloacina.model.context import dumps_context
from cloacina.packaging import protocol, supervise
from cloacina.packaging.archive import PackageArchive
from cloacina.packaging.worker import command as worker_command
from cloacina.packaging.worker import describe_exit, remote_error

log = logging.getLogger("cloacina.loader")

#: How long a package's process may take to import its code before it counts as broken.
START_TIMEOUT = 60.0
#: How long a finished command's output may take to drain once its process group is gone
#: (only a process that left the group, e.g. with ``setsid``, can make this wait).
PIPE_GRACE = 1.0
#: The script that runs a command task in a process group tied to the runner's life.
SUPERVISOR = str(Path(supervise.__file__).resolve())


@dataclass(frozen=True)
class PackageRef:
    """Where a packaged workflow comes from: attached to its :class:`Workflow` as ``origin``."""

    package_id: str
    sha256: str
    package: str
    version: str
    modules: tuple[str, ...]


class WorkerProcess:
    """One ``serve`` process of a package; runs one task at a time."""

    def __init__(self, proc: asyncio.subprocess.Process, ref: PackageRef) -> None:
        self.proc = proc
        self.ref = ref
        self._next = 0

    @classmethod
    async def start(cls, root: Path, ref: PackageRef) -> WorkerProcess:
        argv = worker_command(
            "serve", lib=[str(root / "lib")], modules=list(ref.modules), parent_pid=os.getpid()
        )
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(root),
            limit=protocol.MAX_FRAME,
        )
        worker = cls(proc, ref)
        try:
            hello = await asyncio.wait_for(worker._read(), START_TIMEOUT)
        except TimeoutError as exc:
            await worker.reap()
            raise PackageError(
                f"package {ref.package} {ref.version}: its process did not start within "
                f"{START_TIMEOUT:g}s (does a module do work at import time?)"
            ) from exc
        except asyncio.IncompleteReadError as exc:
            code = await _exit_code(worker)
            raise PackageError(
                f"package {ref.package} {ref.version}: its process ended before it was ready "
                f"({describe_exit(code)})"
            ) from exc
        except BaseException:  # cancelled (shutdown): do not leave the process behind
            worker.kill()
            raise
        if "error" in hello:
            await worker.reap()
            raise PackageError(
                f"package {ref.package} {ref.version} failed to import:\n{hello['error']}"
            )
        return worker

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        header = await self.proc.stdout.readexactly(protocol.HEADER.size)
        (size,) = protocol.HEADER.unpack(header)
        body = await self.proc.stdout.readexactly(size)
        value = json.loads(body)
        assert isinstance(value, dict)
        return value

    async def call(self, request: dict[str, Any], log: AttemptLog | None = None) -> dict[str, Any]:
        """Send a task request; its reply. Output frames that come before the reply (what
        the body printed so far) go to ``log`` as they arrive."""
        assert self.proc.stdin is not None
        self._next += 1
        request["id"] = self._next
        self.proc.stdin.write(protocol.encode(request))
        await self.proc.stdin.drain()
        while True:
            message = await self._read()
            if "kind" in message or "log" not in message:
                return message
            _add_output(log, message)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:  # pragma: no cover - already gone
                pass

    async def reap(self) -> None:
        """Kill the process and collect it, so that its pipes close with this loop alive
        (a process left to the garbage collector closes them on a loop that may be gone)."""
        self.kill()
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:  # pragma: no cover - SIGKILL takes effect at once
            log.warning("package process %s did not end after SIGKILL", self.proc.pid)

    async def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            self.kill()
            await self.proc.wait()


class PackagePool:
    """The worker processes of one package version."""

    def __init__(self, root: Path, ref: PackageRef, max_processes: int) -> None:
        self.root = root
        self.ref = ref
        self.max_processes = max_processes
        self._idle: list[WorkerProcess] = []
        self._count = 0
        self._starting = False
        self._growing: set[asyncio.Task[None]] = set()
        self._available = asyncio.Condition()
        self.started = 0  # processes started over the pool's life (for tests and metrics)
        #: The pool's live processes by pid, idle or busy (read by metrics from any thread).
        self.processes: dict[int, WorkerProcess] = {}

    async def acquire(self) -> WorkerProcess:
        """An idle worker of this package, waiting for one if need be.

        The first process starts in the caller (its import error, if any, fails the task).
        After that, a task that finds every worker busy starts one more process in the
        background (one at a time, up to ``max_processes``) and takes whichever worker comes
        free first, so a burst of tasks never waits for process starts it does not need.
        """
        async with self._available:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._count -= 1
                    self.processes.pop(worker.proc.pid, None)
                if not self._starting:
                    if self._count == 0:
                        self._count += 1
                        self._starting = True
                        break
                    if self._count < self.max_processes:
                        self._count += 1
                        self._starting = True
                        grow = asyncio.get_running_loop().create_task(self._grow())
                        self._growing.add(grow)
                        grow.add_done_callback(self._growing.discard)
                await self._available.wait()
        try:
            worker = await WorkerProcess.start(self.root, self.ref)
        finally:
            async with self._available:
                self._starting = False
                if sys.exc_info()[0] is not None:
                    self._count -= 1
                self._available.notify_all()
        self.started += 1
        self.processes[worker.proc.pid] = worker
        return worker

    async def _grow(self) -> None:
        try:
            worker = await WorkerProcess.start(self.root, self.ref)
        except Exception as exc:
            log.warning(
                "package %s %s: extra worker failed to start: %s",
                self.ref.package,
                self.ref.version,
                exc,
            )
            async with self._available:
                self._count -= 1
                self._starting = False
                self._available.notify_all()
            return
        self.started += 1
        self.processes[worker.proc.pid] = worker
        async with self._available:
            self._idle.append(worker)
            self._starting = False
            self._available.notify_all()

    async def release(self, worker: WorkerProcess, healthy: bool) -> None:
        keep = healthy and worker.alive
        async with self._available:
            if keep:
                self._idle.append(worker)
            else:
                worker.kill()
                self._count -= 1
                self.processes.pop(worker.proc.pid, None)
            self._available.notify_all()
        if not keep:
            await worker.reap()  # outside the lock: the others need not wait for it

    async def close(self) -> None:
        for grow in list(self._growing):
            grow.cancel()
        if self._growing:
            await asyncio.gather(*self._growing, return_exceptions=True)
        async with self._available:
            idle, self._idle = self._idle, []
        for worker in idle:
            self.processes.pop(worker.proc.pid, None)
            await worker.close()


ArchiveSource = Callable[[PackageRef], PackageArchive]


class PackageLoader:
    """Runs packaged tasks; lives on the engine's event loop."""

    def __init__(self, fetch: ArchiveSource, max_processes: int, tenant: str) -> None:
        self._fetch = fetch
        self._max = max_processes
        self._tenant = tenant
        self._root = Path(tempfile.mkdtemp(prefix="cloacina-packages-"))
        self._pools: dict[str, PackagePool] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def _pool(self, ref: PackageRef) -> PackagePool:
        pool = self._pools.get(ref.package_id)
        if pool is not None:
            return pool
        lock = self._loading.setdefault(ref.package_id, asyncio.Lock())
        async with lock:
            pool = self._pools.get(ref.package_id)
            if pool is None:
                root = self._root / ref.sha256
                archive = await asyncio.to_thread(self._fetch, ref)
                await asyncio.to_thread(_extract, archive, root)
                pool = PackagePool(root, ref, self._max)
                self._pools[ref.package_id] = pool
        return pool

    async def run(self, job: Job, ref: PackageRef) -> Outcome:
        """Run one claimed task of a package and return its outcome."""
        try:
            pool = await self._pool(ref)
        except PackageError as exc:
            return _failed(job, str(exc), retryable=False)
        command = getattr(job.task, "command", None)
        if command:
            return await self._run_command(job, pool, tuple(command))
        try:
            worker = await pool.acquire()
        except PackageError as exc:
            return _failed(job, str(exc), retryable=False)
        request = _request(job)
        healthy = True
        try:
            if job.task.timeout is not None:
                reply = await asyncio.wait_for(worker.call(request, job.log), job.task.timeout)
            else:
                reply = await worker.call(request, job.log)
        except TimeoutError:
            healthy = False
            worker.kill()  # the only way to stop a running body: kill its process
            return timeout_outcome(job)
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            healthy = False
            code = await _exit_code(worker)
            return _failed(
                job,
                f"task {job.task.id!r}: the process of package {ref.package} {ref.version} "
                f"died while running it ({describe_exit(code)})",
                retryable=True,
            )
        except asyncio.CancelledError:
            healthy = False
            worker.kill()
            raise
        finally:
            await pool.release(worker, healthy)
        _add_output(job.log, reply)
        return _outcome(job, reply)

    async def poll_trigger(self, ref: PackageRef, name: str) -> dict[str, Any] | None:
        """Call trigger ``name`` of package ``ref`` in one of the package's processes: the
        context it returned (None: start nothing). Raises :class:`RemoteTaskError` with the
        package's traceback when the function raised, :class:`PackageError` when the
        package's process could not start or died."""
        pool = await self._pool(ref)
        worker = await pool.acquire()
        healthy = True
        try:
            reply = await worker.call({"trigger": name})
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            healthy = False
            code = await _exit_code(worker)
            raise PackageError(
                f"trigger {name!r}: the process of package {ref.package} {ref.version} died "
                f"while polling it ({describe_exit(code)})"
            ) from None
        except asyncio.CancelledError:
            healthy = False
            worker.kill()
            raise
        finally:
            await pool.release(worker, healthy)
        if reply.get("kind") != "trigger":
            raise RemoteTaskError(str(reply.get("error") or "the poll failed"), retryable=True)
        context = reply.get("context")
        if context is not None and not isinstance(context, dict):
            raise PackageError(f"trigger {name!r}: its process answered {type(context).__name__}")
        return context

    async def _run_command(self, job: Job, pool: PackagePool, command: tuple[str, ...]) -> Outcome:
        ctx = build_context(job.inputs)
        skipped = condition_skip(job, ctx)
        if skipped is not None:
            return skipped
        executable = (pool.root / command[0]).resolve()
        if pool.root.resolve() not in executable.parents:
            return _failed(job, f"command {command[0]!r} is outside the package", False)
        env = dict(os.environ)
        env.update(
            CLOACINA_EXECUTION_ID=job.claim.execution_id,
            CLOACINA_TASK_ID=job.task.id,
            CLOACINA_ATTEMPT=str(job.claim.attempt),
            CLOACINA_NAMESPACE=job.info.namespace,
        )
        if job.info.map_index is not None:
            env["CLOACINA_MAP_INDEX"] = str(job.info.map_index)
        try:
            returncode, stdout, stderr = await asyncio.wait_for(
                _run_supervised(
                    (str(executable), *command[1:]),
                    dumps_context(ctx._data).encode(),
                    cwd=pool.root,
                    env=env,
                    log=job.log,
                ),
                job.task.timeout,
            )
        except TimeoutError:
            return timeout_outcome(job)
        except OSError as exc:
            return _failed(job, f"command task {job.task.id!r} could not start: {exc}", True)
        if returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-2000:]
            how = (
                f"exited with code {returncode}"
                if returncode > 0
                else f"was {describe_exit(returncode)}"  # a signal: "was killed by SIGSEGV"
            )
            return _failed(
                job,
                f"command {' '.join(command)} {how}: {tail}",
                retryable=True,
            )
        text = stdout.decode(errors="replace").strip()
        if job.info.map_index is not None:  # an instance: what it printed is its value
            try:
                value = json.loads(text) if text else None
            except ValueError as exc:
                return _failed(
                    job,
                    f"command {' '.join(command)} (instance {job.info.map_index}) must print "
                    f"its value as JSON on stdout ({exc}); it printed {text[:200]!r}",
                    retryable=False,
                )
            return instance_outcome(job, value)
        try:
            updates = json.loads(text) if text else {}
            if not isinstance(updates, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return _failed(
                job,
                f"command {' '.join(command)} must print a JSON object of context updates on "
                f"stdout ({exc}); it printed {text[:200]!r}",
                retryable=False,
            )
        ctx.merge(updates)
        try:
            output = dumps_context(ctx._data)
        except Exception as exc:
            return _failed(job, str(exc), retryable=False)
        return Outcome(job.claim, COMPLETED, output_json=output, finished_at=time.time())

    def process_ids(self) -> list[tuple[str, str, int]]:
        """``(package, version, pid)`` of every live package process (any thread)."""
        return [
            (pool.ref.package, pool.ref.version, pid)
            for pool in list(self._pools.values())
            for pid, worker in list(pool.processes.items())
            if worker.alive
        ]

    async def close(self) -> None:
        for pool in list(self._pools.values()):
            await pool.close()
        self._pools.clear()
        await asyncio.to_thread(shutil.rmtree, self._root, True)


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Streams, plus a future set the moment the process exits.

    ``Process.wait()`` resolves only once every pipe is closed too, and a grandchild that
    escaped the process group can hold the pipes open forever; the end of the process itself
    is what a command task waits for.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        pass


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    try:
        stream.write(data)
        await stream.drain()
        stream.close()
    except OSError:  # the command stopped reading its stdin (or exited): not our error
        pass


async def _collect(
    stream: asyncio.StreamReader | None,
    sink: bytearray,
    log: AttemptLog | None = None,
) -> None:
    if stream is None:
        return
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    while chunk := await stream.read(1 << 16):
        sink += chunk
        if log is not None:  # as it comes, for followers
            log.write(STDERR, decoder.decode(chunk))
    if log is not None:
        log.write(STDERR, decoder.decode(b"", final=True))


def _add_output(log: AttemptLog | None, message: dict[str, Any]) -> None:
    """The output a package's process sent (``log``: ``[[stream, at, text], ...]``, and the
    bytes it dropped at its bound, ``log_dropped``) into ``log``, under the same bound."""
    if log is None:
        return
    chunks = message.get("log")
    if isinstance(chunks, list):
        for item in chunks:
            if isinstance(item, list) and len(item) == 3:
                stream, at, text = item
                if stream in (STDOUT, STDERR, LOGGING) and isinstance(text, str):
                    log.write(stream, text, float(at) if isinstance(at, int | float) else None)
    dropped = message.get("log_dropped")
    if isinstance(dropped, int):
        log.add_dropped(dropped)


async def _run_supervised(
    argv: tuple[str, ...],
    stdin: bytes,
    *,
    cwd: Path,
    env: dict[str, str],
    log: AttemptLog | None = None,
) -> tuple[int, bytes, bytes]:
    """Run a command task's executable under :mod:`cloacina.packaging.supervise`: in a
    process group of its own, tied to this process's life. Returns ``(exit code, stdout,
    stderr)`` once the command has exited; its stderr also goes to ``log`` as it comes
    (its stdout is its result).

    When the command exits, whatever it left running in its group is killed; when this
    coroutine is cancelled (a timeout, a cancelled run, a shutdown) the whole group is killed.
    Neither waits on pipes that a process outside the group might hold.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitProtocol(limit=1 << 16, loop=loop),
        sys.executable,
        "-I",
        SUPERVISOR,
        str(os.getpid()),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(cwd),
        env=env,
        start_new_session=True,  # its pid is its process group's id
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    out, err = bytearray(), bytearray()
    helpers = [
        loop.create_task(_feed(proc.stdin, stdin)),
        loop.create_task(_collect(proc.stdout, out)),
        loop.create_task(_collect(proc.stderr, err, log)),
    ]
    try:
        await protocol.exited
        _kill_group(proc.pid)  # what the command left behind in its group
        await asyncio.wait(helpers[1:], timeout=PIPE_GRACE)
        code = transport.get_returncode()
        assert code is not None
        return code, bytes(out), bytes(err)
    finally:
        _kill_group(proc.pid)
        for helper in helpers:
            helper.cancel()
        transport.close()


def _extract(archive: PackageArchive, root: Path) -> None:
    if root.exists():
        return
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.extract(tmp)
    os.replace(tmp, root)


def _request(job: Job) -> dict[str, Any]:
    claim = job.claim
    return {
        "workflow": claim.workflow_name,
        "task": job.task.id,
        "execution_id": claim.execution_id,
        "attempt": claim.attempt,
        "recovery": claim.recovery_count,
        "deps_total": claim.deps_total,
        "deps_failed": claim.deps_failed,
        "deps_skipped": claim.deps_skipped,
        "namespace": job.info.namespace,
        "inputs": job.inputs,
        "max_log_bytes": 0 if job.log is None else job.log.limit,
        "map_index": job.info.map_index,
    }


def _outcome(job: Job, reply: dict[str, Any]) -> Outcome:
    kind = reply.get("kind")
    now = time.time()
    if kind == COMPLETED:
        return Outcome(job.claim, COMPLETED, output_json=str(reply["output"]), finished_at=now)
    if kind == SKIPPED:
        return Outcome(job.claim, SKIPPED, skip_reason=reply.get("skip_reason"), finished_at=now)
    exc = remote_error(reply)
    return Outcome(
        job.claim,
        FAILED,
        error=str(reply.get("error") or exc),
        traceback=reply.get("traceback"),
        exc=exc,
        finished_at=now,
    )


def _failed(job: Job, message: str, retryable: bool) -> Outcome:
    return Outcome(
        job.claim,
        FAILED,
        error=message,
        exc=RemoteTaskError(message, retryable=retryable),
        finished_at=time.time(),
    )


async def _exit_code(worker: WorkerProcess) -> int | None:
    try:
        return await asyncio.wait_for(worker.proc.wait(), 1.0)
    except TimeoutError:
        worker.kill()
        return None
