"""The process a package's tasks run in.

Started with :func:`command` (``python -I -S -c BOOTSTRAP ROOT inspect|serve [--parent-pid
PID] --lib DIR --modules M``). A package's code sees the standard library, ``cloacina`` and its
own ``lib/``, nothing else: ``-S`` keeps the runner's site-packages (and their ``.pth`` files)
out of ``sys.path``, and the bootstrap adds one import finder that answers for the top-level
``cloacina`` package alone, from ``ROOT``, the directory the runner imports it from. So a
dependency the project forgot to declare fails at build and registration, where the same
process imports the code, not on the next machine. The worker itself imports only the
standard library and ``cloacina``'s pure parts (no SQLAlchemy, no store).

The package's ``lib/`` goes first on ``sys.path`` (and nothing else of the package's goes
anywhere), the modules are imported, and the ``@packaged_workflow`` classes they define are
found in the catalog. ``inspect`` prints their description and exits (the builder and the
registry use it to validate code against a manifest); ``serve`` answers task requests on
stdin/stdout until stdin closes. The protocol owns the real stdout: a task's own ``print``
goes to stderr. A body's prints and logging records are also captured (bounded by the
request's ``max_log_bytes``) and sent back: every ``LOG_SEND_INTERVAL`` while it runs, as
``{"id", "log": [[stream, at, text], ...]}`` frames, and the rest with its reply (``log``,
``log_dropped``).

With ``--parent-pid`` the process dies with the runner that started it, even in the middle
of a task body: on Linux the kernel kills it when the parent *thread* that started it exits
(``PR_SET_PDEATHSIG``; the runner starts ``serve`` processes from its engine's task loop
thread, which ends only after the loader has closed them, and ``inspect`` from a thread that
waits for it), and everywhere a watcher thread exits the process when the parent pid changes
or (``serve``) the runner's end of stdin is closed.
Otherwise a runner killed with ``kill -9`` would leave its package processes running tasks
that another runner recovers and runs again.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

from cloacina.engine import capture
from cloacina.engine.capture import AttemptLog
from cloacina.engine.executor import COMPLETED, Job, Outcome, run_async, run_sync
from cloacina.errors import RemoteTaskError, TaskTimeoutError
from cloacina.model.trigger import trigger_catalog
from cloacina.model.workflow import Workflow, catalog
from cloacina.packaging import protocol
from cloacina.packaging.manifest import describe_workflow
from cloacina.packaging.supervise import set_parent_death_signal
from cloacina.store.records import Claim
from cloacina.taskinfo import TaskInfo

#: Run by ``python -I -S -c``: find ``cloacina`` (the top-level package only) in the directory
#: given as the first argument, then run :func:`main` on the rest. Submodules of ``cloacina``
#: are found through its ``__path__``; nothing else in that directory is reachable.
BOOTSTRAP = """\
import sys
from importlib.machinery import PathFinder


class CloacinaOnly:
    root = [sys.argv.pop(1)]

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return PathFinder.find_spec(name, cls.root) if name == "cloacina" else None


sys.meta_path.insert(sys.meta_path.index(PathFinder), CloacinaOnly)
from cloacina.packaging.worker import main

sys.exit(main())
"""


def cloacina_root() -> str:
    """The directory this process imports the ``cloacina`` package from."""
    import cloacina

    return os.path.dirname(os.path.abspath(next(iter(cloacina.__path__))))


def command(
    mode: str, *, lib: list[str], modules: list[str], parent_pid: int | None = None
) -> list[str]:
    """The argv of a package process (``mode`` is ``inspect`` or ``serve``), isolated as the
    module's docstring says. ``parent_pid`` ties its life to that process's."""
    argv = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, cloacina_root(), mode]
    if parent_pid is not None:
        argv += ["--parent-pid", str(parent_pid)]
    for path in lib:
        argv += ["--lib", path]
    return [*argv, "--modules", ",".join(modules)]


def missing_module_hint(exc: BaseException) -> str | None:
    """What to do about a top-level module the package's code imports but cannot see."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name or "." in exc.name:
        return None  # a missing submodule is a bug in its (present) package, not a dependency
    if exc.name in sys.stdlib_module_names or exc.name == "cloacina":
        return None
    return (
        f"hint: module {exc.name!r} is neither in the standard library nor in the package. A "
        "package's code sees only the standard library, cloacina and the package's own lib/, "
        "not what is installed beside the runner: declare the distribution that provides "
        f"{exc.name!r} in [project].dependencies of pyproject.toml and rebuild (the build "
        "vendors it into lib/)"
    )


def load(lib: list[str], modules: list[str]) -> list[Workflow]:
    """Import ``modules`` with ``lib`` first on the path; the packaged workflows they define."""
    for path in reversed(lib):
        sys.path.insert(0, os.path.abspath(path))
    before = {(w.name, w.version) for w in catalog.all_versions()}
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            hint = missing_module_hint(exc)
            if hint is not None:
                exc.add_note(hint)
            raise
    found = [
        w
        for w in catalog.all_versions()
        if (w.name, w.version) not in before and w.package != "embedded"
    ]
    return sorted(found, key=lambda w: w.name)


def _protocol_stdout() -> IO[bytes]:
    """Keep the real stdout for the protocol; send fd 1 (prints) to stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb", buffering=0)


def _stray_triggers(workflows: list[Workflow]) -> list[str]:
    """The package's triggers that start none of its workflows, as sentences."""
    return [
        f"trigger {t.name!r} starts workflow {t.workflow!r}, which this package does not "
        "define: a package's triggers start its own @packaged_workflow workflows"
        for t in trigger_catalog.all()
        if not any(t.starts(w) for w in workflows)
    ]


def inspect_main(lib: list[str], modules: list[str]) -> int:
    out = _protocol_stdout()
    try:
        workflows = load(lib, modules)
        stray = _stray_triggers(workflows)
        if stray:
            protocol.write(out, {"error": "; ".join(stray)})
            return 1
        described = [{**describe_workflow(w).to_data(), "package": w.package} for w in workflows]
        protocol.write(out, {"workflows": described})
        return 0
    except BaseException as exc:
        protocol.write(out, {"error": _error_text(exc)})
        return 1


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _reply(request_id: int, outcome: Outcome, wf: Workflow) -> dict[str, Any]:
    reply: dict[str, Any] = {"id": request_id, "kind": outcome.kind}
    if outcome.kind == COMPLETED:
        reply["output"] = outcome.output_json
    elif outcome.kind == "skipped":
        reply["skip_reason"] = outcome.skip_reason
    else:
        exc = outcome.exc
        task = wf.tasks[outcome.claim.task_id]
        hint = missing_module_hint(exc) if exc is not None else None
        reply["error"] = f"{outcome.error}\n{hint}" if hint else outcome.error
        reply["traceback"] = outcome.traceback
        reply["timeout"] = isinstance(exc, TaskTimeoutError)
        reply["retryable"] = exc is not None and task.retry.retries_on(exc)
        reply["exc_type"] = type(exc).__name__ if exc is not None else ""
    return reply


def _poll_trigger(request_id: int, name: str) -> dict[str, Any]:
    """Call trigger ``name``'s function: its context (None: start nothing), or its error
    with the traceback."""
    trig = trigger_catalog.find(name)
    if trig is None:
        known = ", ".join(trigger_catalog.names()) or "none"
        return {
            "id": request_id,
            "kind": "failed",
            "error": f"this package has no trigger named {name!r} (it has: {known})",
        }
    try:
        context = trig.poll()
    except BaseException as exc:  # reported to the runner, which backs off
        return {"id": request_id, "kind": "failed", "error": _error_text(exc)}
    return {"id": request_id, "kind": "trigger", "context": context}


#: How often a running body's captured output is sent to the runner (seconds).
LOG_SEND_INTERVAL = 0.5


class _LogSender:
    """Sends the output of the body running now to the runner while it runs. Every frame
    goes out under one lock, so a body's output frames always come before its reply."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.request_id = 0
        self.log: AttemptLog | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="cloacina-log-sender", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(LOG_SEND_INTERVAL)
            with self.lock:
                log = self.log
                if log is not None and log.pending:
                    protocol.write(self.out, {"id": self.request_id, "log": log.take()})

    def reply(self, message: dict[str, Any]) -> None:
        """Send a body's reply, with the rest of its output; its log is done."""
        with self.lock:
            log, self.log = self.log, None
            if log is not None:
                log.close(marker=False)  # the runner adds the marker, counting every byte
                message["log"] = log.take()
                message["log_dropped"] = log.dropped
            protocol.write(self.out, message)


def serve_main(lib: list[str], modules: list[str]) -> int:
    out = _protocol_stdout()
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    capture.install()  # sys.stdout is the redirected one now
    sender = _LogSender(out)
    try:
        workflows = {w.name: w for w in load(lib, modules)}
    except BaseException as exc:
        protocol.write(out, {"error": _error_text(exc)})
        return 1
    protocol.write(
        out,
        {"ready": True, "workflows": {n: w.version for n, w in workflows.items()}},
    )
    sender.start()
    loop: Any = None  # an event loop, made when the first async task comes
    while True:
        request = protocol.read(inp)
        if request is None:
            return 0
        if "trigger" in request:  # a poll of one of the package's triggers
            sender.reply(_poll_trigger(int(request["id"]), str(request["trigger"])))
            continue
        wf = workflows[request["workflow"]]
        task = wf.tasks[request["task"]]
        claim = Claim(
            0,
            request["execution_id"],
            task.id,
            int(request["attempt"]),
            int(request["recovery"]),
            "",
            wf.name,
            wf.version,
            time.time(),
            int(request["deps_total"]),
            int(request["deps_failed"]),
            int(request["deps_skipped"]),
        )
        info = TaskInfo(
            execution_id=claim.execution_id,
            task_id=task.id,
            workflow_name=wf.name,
            namespace=request["namespace"],
            attempt=claim.attempt,
            recovery=claim.recovery_count,
            map_index=request.get("map_index"),
        )
        job = Job(claim, task, list(request["inputs"]), info)
        limit = int(request.get("max_log_bytes") or 0)
        if limit:
            job.log = AttemptLog(claim.execution_id, task.id, claim.attempt, limit)
            with sender.lock:
                sender.request_id, sender.log = int(request["id"]), job.log
        if task.is_async:
            if loop is None:
                import asyncio

                loop = asyncio.new_event_loop()
            outcome = loop.run_until_complete(run_async(job))
        else:
            outcome = run_sync(job)
        sender.reply(_reply(int(request["id"]), outcome, wf))


#: How often the watcher looks at the parent (seconds).
WATCH_INTERVAL = 0.5
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL if hasattr(select, "poll") else 0


def die_with_parent(parent: int, *, watch_stdin: bool) -> None:
    """Make this process end when ``parent`` does (see the module's docstring).

    Called first thing, before the package's code is imported. The death signal cannot be
    caught, and the watcher leaves with ``os._exit``: a task body that is busy, or that
    catches ``SystemExit``, cannot keep the process alive.
    """
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    poller = None
    if watch_stdin and hasattr(select, "poll"):
        poller = select.poll()
        # No events asked for: poll still reports POLLHUP (the runner closed its end or
        # died) without consuming the requests the serve loop reads on this same fd.
        poller.register(0, 0)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            if poller is None:
                time.sleep(WATCH_INTERVAL)
                continue
            events = poller.poll(WATCH_INTERVAL * 1000)
            if any(mask & _GONE for _, mask in events):
                os._exit(0)

    threading.Thread(target=watch, name="cloacina-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloacina.packaging.worker")
    parser.add_argument("mode", choices=["inspect", "serve"])
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--lib", action="append", default=[])
    parser.add_argument("--modules", required=True)
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid, watch_stdin=args.mode == "serve")
    modules = [m for m in args.modules.split(",") if m]
    if args.mode == "inspect":
        return inspect_main(args.lib, modules)
    return serve_main(args.lib, modules)


def describe_exit(code: int | None) -> str:
    """A process's exit status in words: ``exit code 3``, ``killed by SIGSEGV (exit code
    -11)`` (a negative code is the signal that ended it), ``exit status unknown``."""
    if code is None:
        return "exit status unknown"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name} (exit code {code})"


def remote_error(reply: dict[str, Any]) -> RemoteTaskError | TaskTimeoutError:
    """The exception a failed reply stands for, on the runner's side."""
    message = str(reply.get("error") or "task failed")
    if reply.get("timeout"):
        return TaskTimeoutError(message)
    return RemoteTaskError(
        message, retryable=bool(reply.get("retryable")), exc_type=str(reply.get("exc_type", ""))
    )


if __name__ == "__main__":
    sys.exit(main())
