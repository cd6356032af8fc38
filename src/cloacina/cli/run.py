"""``cloacina run``: import the modules that define workflows, run one, show how it went."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import io
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

import click
from rich.text import Text

from cloacina.cli.consoles import err_console, out_console
from cloacina.cli.databases import display_url, require_tenant, sqlite_file
from cloacina.cli.errors import CliError, CliInterrupted, exit_code_for, print_error
from cloacina.cli.follow import EventPrinter, follow
from cloacina.cli.json_output import dump_json, result_json
from cloacina.cli.naming import module_workflow, parse_ref, shadowed_package_note
from cloacina.cli.options import (
    db_option,
    resolve_db,
    resolve_settings,
    resolve_tenant,
    settings_options,
    tenant_option,
)
from cloacina.cli.remote import open_client, server_options
from cloacina.cli.render import render_context, render_header, render_tasks, render_tracebacks
from cloacina.errors import (
    ContextError,
    ExecutionTimeoutError,
    InvalidStateError,
    WorkflowNotFoundError,
)
from cloacina.model.context import parse_context_json
from cloacina.model.status import WorkflowResult
from cloacina.model.workflow import Workflow, catalog
from cloacina.registry.loader import PackageRef
from cloacina.runner import DefaultRunner


# ---- context ---------------------------------------------------------------------------------
def parse_context(text: str, source: str) -> dict[str, Any]:
    """The JSON object in ``text`` (``source`` names where it came from, for messages)."""
    try:
        return parse_context_json(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}") from None
    except ContextError as exc:  # not an object, or nested too deeply
        raise CliError(f"{source}: {exc}") from None


def load_context(context: str | None, context_file: str | None) -> dict[str, Any]:
    if context is not None and context_file is not None:
        raise CliError("give either --context or --context-file, not both")
    if context is not None:
        return parse_context(context, "--context")
    if context_file is not None:
        if context_file == "-":
            return parse_context(sys.stdin.read(), "--context-file - (stdin)")
        try:
            text = Path(context_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --context-file {context_file!r}: {exc}") from None
        return parse_context(text, f"--context-file {context_file!r}")
    return {}


# ---- modules ---------------------------------------------------------------------------------
def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def _import_failure(spec: str, exc: BaseException) -> CliError:
    """An error naming the import failure, with the tail of its traceback (user frames)."""
    here = str(Path(__file__).resolve().parent.parent)  # the cloacina package
    tb = traceback.TracebackException.from_exception(exc)
    frames = [
        f
        for f in tb.stack
        if not f.filename.startswith(("<frozen", here)) and "importlib" not in f.filename
    ]
    lines = ["Traceback (most recent call last, import machinery omitted):"]
    if len(frames) > 6:
        lines.append("  ...")
    lines += [chunk.rstrip("\n") for chunk in traceback.format_list(frames[-6:])]
    lines += [chunk.rstrip("\n") for chunk in tb.format_exception_only()]
    detail = "\n".join(lines)
    return CliError(f"cannot import module {spec!r}: {type(exc).__name__}: {exc}\n{detail}")


def _import_file(spec: str) -> ModuleType:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise CliError(f"--module {spec!r}: no such file")
    parent = str(path.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    name = path.stem if path.stem.isidentifier() else "_cloacina_module"
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) == str(path):
            return existing
        name = f"_cloacina_module_{abs(hash(str(path))):x}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"--module {spec!r}: cannot import this file as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _import_failure(spec, exc) from None
    return module


def import_module(spec: str) -> ModuleType:
    """Import ``spec``: a dotted module name (found from the current directory too) or a
    path to a ``.py`` file."""
    if _is_path(spec):
        return _import_file(spec)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise CliError(
                f"cannot import module {spec!r}: no module named {exc.name!r} (searched the "
                f"current directory {os.getcwd()!r} and the Python path); give a dotted module "
                "name or the path of a .py file"
            ) from None
        raise _import_failure(spec, exc) from None
    except (Exception, SystemExit) as exc:
        raise _import_failure(spec, exc) from None


def import_modules(specs: Sequence[str]) -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for spec in specs:
        import_module(spec)


def check_workflow(name: str, modules: Sequence[str], registered: Sequence[str] = ()) -> None:
    """A clear usage error when no imported module (nor the database's registry) defines
    workflow ``name``."""
    known = sorted(set(catalog.names()) | set(registered))
    if name in known:
        return
    imported = ", ".join(repr(m) for m in modules)
    if not known:
        if modules:
            defines = "defines" if len(modules) == 1 else "define"
            why = f"{imported} {defines} no workflows and no package is registered"
        else:
            why = "no --module was given and no package is registered"
        raise CliError(
            f"unknown workflow {name!r}: {why}. Define it with @workflow(name=...) in a module "
            "and pass it with --module MOD, or register a package that defines it with "
            "`cloacina package register FILE`"
        )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    source = f"imported: {imported}" if modules else "no --module given"
    raise CliError(
        f"unknown workflow {name!r} ({source}). Known workflows: {', '.join(known)}.{hint}"
    )


# ---- the command -----------------------------------------------------------------------------
@click.command("run")
@click.argument("workflow")
@click.option(
    "--version",
    "version",
    metavar="VERSION",
    help="Run this registered version of the workflow's package (the same as "
    "WORKFLOW@VERSION) [default: the promoted version, else the highest].",
)
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Module that defines the workflow: a dotted name (the current directory is on the "
    "path) or a path to a .py file. Repeatable. A registered package's workflow needs none.",
)
@click.option("--context", "context", metavar="JSON", help="Input context, a JSON object.")
@click.option(
    "--context-file",
    "context_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Read the input context (a JSON object) from FILE ('-' for stdin).",
)
@db_option
@tenant_option
@server_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Cancel the run if it has not finished after SECONDS.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout (what tasks print goes to stderr).",
)
@click.option(
    "--idempotency-key",
    "idempotency_key",
    metavar="KEY",
    help="At most one run per KEY (and tenant): again with the same KEY, follow (or show) "
    "the run it started; with another workflow or context, refused.",
)
@settings_options
@click.pass_context
def run_command(
    ctx: click.Context,
    workflow: str,
    version: str | None,
    modules: tuple[str, ...],
    context: str | None,
    context_file: str | None,
    db: str | None,
    tenant: str | None,
    timeout: float | None,
    as_json: bool,
    idempotency_key: str | None,
) -> None:
    """Run WORKFLOW to the end and show its tasks and final context.

    WORKFLOW is a workflow a --module defines, or one registered in the database (no
    --module needed). PACKAGE::WORKFLOW picks a registered package's, WORKFLOW@VERSION (or
    --version) a version of that package. When a --module defines WORKFLOW, it runs, even
    if a registered package has one of the same name (a note says so).

    Exit code 0 when the run completed, 1 when it failed (or was cancelled or timed out:
    the run is cancelled, its error says so), 2 for usage errors, 130 when interrupted by
    Ctrl-C or SIGTERM (the run is cancelled). The settings options are those of
    `cloacina worker`; each may also come from its CLOACINA_* variable (`cloacina config
    show` lists them).
    """
    input_context = load_context(context, context_file)
    ref = parse_ref(workflow, version)
    client = open_client(ctx, tenant)
    if client is not None:  # the run happens on the server
        if modules:
            client.close()
            raise CliError(
                "--module defines workflows in this process; with --server the server's "
                "workflows run (start it with --module, or register a package)"
            )
        from cloacina.cli.run_remote import run_remote

        run_remote(ctx, client, ref, input_context, timeout, as_json, idempotency_key)
        return
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    settings = resolve_settings(ctx)
    import_modules(modules)
    require_tenant(url, tenant_name)
    # What the user names explicitly wins: a workflow the --module modules define.
    explicit = module_workflow(ref, modules)
    path = sqlite_file(url, tenant_name)
    if explicit is None and path is not None and not path.exists():
        # No database, so no registered packages either.
        check_workflow(ref.workflow, modules)
        if ref.qualified:
            raise CliError(
                f"no package is registered in {display_url(url)}, so nothing is named {ref}"
            )
    runner = DefaultRunner(url, tenant=tenant_name, settings=settings)
    if explicit is not None:
        wf = explicit
        note = shadowed_package_note(runner, ref, wf)
        if note:
            err_console().print(Text(f"note: {note}", style="yellow"))
    else:
        try:
            wf = runner.resolve(str(ref))  # a registered package's, or one a module defines
        except WorkflowNotFoundError as exc:
            registered = runner.catalog.names()
            runner.shutdown()
            if not ref.qualified:
                check_workflow(ref.workflow, modules, registered)
            raise CliError(str(exc)) from None
    max_attempts = {tid: t.retry.max_attempts for tid, t in wf.tasks.items()}
    # A registered package's workflow is shown by its package's version, not only its hash.
    package_version = wf.origin.version if isinstance(wf.origin, PackageRef) else None

    # With --json, stdout holds the JSON document only: what tasks print goes to stderr.
    with task_output_to_stderr(as_json) as stdout:
        clean = False
        try:
            result, problem = _run_to_end(
                runner, wf, input_context, timeout, live=not as_json, key=idempotency_key
            )
            clean = problem is None
        finally:
            runner.shutdown(wait=clean)
        if as_json:
            data = result_json(result, max_attempts)
            data["package_version"] = package_version
            stdout.write(dump_json(data) + "\n")
            stdout.flush()
    if not as_json:
        show_result(result, max_attempts, package_version)
    if problem:
        print_error(problem)
    ctx.exit(exit_code_for(result.status))


def _run_to_end(
    runner: DefaultRunner,
    wf: Workflow,
    input_context: dict[str, Any],
    timeout: float | None,
    *,
    live: bool,
    key: str | None = None,
) -> tuple[WorkflowResult, str | None]:
    """Start a run of ``wf`` and wait for its end (printing its events on a terminal when
    ``live``): its result, and what went wrong (a timeout: the run was cancelled, with the
    timeout as its error). Ctrl-C and SIGTERM cancel the run and raise CliInterrupted."""
    err = err_console()
    live = live and err.is_terminal
    execution_id: str | None = None
    with sigterm_interrupts():  # the cancel below too: a second SIGTERM is ignored
        try:
            execution_id = runner.schedule_workflow(wf, input_context, key)
            if live:
                err.print(
                    f"[bold]Running[/] {wf.name} ({len(wf.tasks)} tasks), execution {execution_id}"
                )
            try:
                if live:
                    printer = EventPrinter(err, time.time())
                    return follow(runner, execution_id, printer, timeout=timeout), None
                return runner.wait(execution_id, timeout), None
            except ExecutionTimeoutError:
                reason = f"timed out: did not finish within {timeout:g}s (cloacina run --timeout)"
                problem = (
                    f"workflow execution {execution_id} did not finish within {timeout:g}s; "
                    "it was cancelled"
                )
                return _cancel(runner, execution_id, reason), problem
        except (KeyboardInterrupt, Terminated) as exc:
            # Ctrl-C and SIGTERM (a service manager, a container stop, kill) alike: the run is
            # cancelled, not left 'running' with nobody to finish it.
            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            if execution_id is None:
                raise CliInterrupted(
                    f"{what} while the run was being started; if it was created, "
                    "`cloacina executions list --status running` shows it"
                ) from None
            _cancel(runner, execution_id, f"cloacina run was {what}")
            raise CliInterrupted(
                f"{what}: workflow execution {execution_id} was cancelled"
            ) from None


def _cancel(runner: DefaultRunner, execution_id: str, reason: str) -> WorkflowResult:
    try:
        runner.cancel(execution_id, reason=reason)
    except InvalidStateError:  # it ended meanwhile
        pass
    return runner.get_execution(execution_id)


# ---- signals and task output -----------------------------------------------------------------
class Terminated(BaseException):
    """SIGTERM arrived while ``cloacina run`` waited for its run (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it)."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread, once (a
    second SIGTERM while the run is being cancelled is ignored, so the cancel completes).
    Outside the main thread (where no handler can be set) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def task_output_to_stderr(enabled: bool) -> Iterator[TextIO]:
    """Within the block, what is written to stdout goes to stderr, and the stream yielded
    writes to the real stdout (with ``enabled`` false: nothing changes, it is stdout).

    Tasks run on worker threads and in child processes, so ``sys.stdout`` alone is not
    enough: file descriptor 1 is pointed at stderr too (a ``print`` in a thread, a
    subprocess inheriting fd 1, a C extension writing to it), and restored afterwards.
    """
    if not enabled:
        yield sys.stdout
        return
    original = sys.stdout
    original.flush()
    saved_fd: int | None = None
    try:
        if original.fileno() == 1 and sys.stderr.fileno() == 2:
            saved_fd = os.dup(1)
            os.dup2(2, 1)
    except (OSError, ValueError, io.UnsupportedOperation):
        saved_fd = None  # no real stdout (an in-process test runner): sys.stdout only
    real: TextIO = (
        open(  # noqa: SIM115 -- closed below, after the block
            saved_fd, "w", encoding=original.encoding, errors=original.errors, closefd=False
        )
        if saved_fd is not None
        else original
    )
    sys.stdout = sys.stderr
    try:
        yield real
    finally:
        sys.stdout = original
        original.flush()  # anything buffered before the swap: still to stderr (fd 1 is)
        if saved_fd is not None:
            real.close()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def show_result(
    result: WorkflowResult, max_attempts: dict[str, int], package_version: str | None = None
) -> None:
    console = out_console()
    render_header(console, result, package_version)
    console.print()
    render_tasks(console, result, max_attempts)
    render_tracebacks(console, result)
    console.print()
    render_context(console, "Final context", result.final_context)
