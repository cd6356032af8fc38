"""Which workflow a name on the command line means: ``WORKFLOW``, ``PACKAGE::WORKFLOW``,
``WORKFLOW@VERSION`` or ``PACKAGE::WORKFLOW@VERSION`` (VERSION is the package's), and the
rule that what the user names explicitly wins: a workflow the ``--module`` modules define
runs rather than a registered package's of the same name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloacina.cli.errors import CliError
from cloacina.errors import WorkflowNotFoundError
from cloacina.model.namespace import SEPARATOR
from cloacina.model.workflow import Workflow, catalog
from cloacina.registry.registry import WorkflowRef

if TYPE_CHECKING:
    from cloacina.runner import DefaultRunner


def parse_ref(text: str, version: str | None = None) -> WorkflowRef:
    """The workflow ``text`` names, with ``--version VERSION`` when given."""
    try:
        ref = WorkflowRef.parse(text)
    except WorkflowNotFoundError as exc:
        raise CliError(str(exc)) from None
    if version is None:
        return ref
    if ref.version is not None and ref.version != version:
        raise CliError(
            f"{text!r} names version {ref.version} and --version says {version}: give one"
        )
    return WorkflowRef(ref.workflow, ref.package, version)


def module_workflow(ref: WorkflowRef, modules: Sequence[str]) -> Workflow | None:
    """The workflow the ``--module`` modules define under ``ref`` (a plain name, or
    ``PACKAGE::WORKFLOW`` of a ``@packaged_workflow`` they define), or None. A version is
    a registered package's, so ``WORKFLOW@VERSION`` never means a module's workflow."""
    if not modules or ref.version is not None:
        return None
    wf = catalog.find(ref.workflow)
    if wf is None or (ref.package is not None and wf.package != ref.package):
        return None
    return wf


def shadowed_package_note(runner: DefaultRunner, ref: WorkflowRef, wf: Workflow) -> str | None:
    """When a module's workflow runs although a registered package has one of the same
    name: a note that says which one runs and how to run the other."""
    if ref.package is not None:
        return None
    registered = runner.registry.lookup(WorkflowRef(ref.workflow))
    if registered is None or registered.origin is None:
        return None
    origin = registered.origin
    where = getattr(wf.source, "__module__", None) or "--module"
    return (
        f"running workflow {ref.workflow!r} from module {where} (named with --module), not the "
        f"one package {origin.package} {origin.version} registered in the database; run that "
        f"one as {origin.package}{SEPARATOR}{ref.workflow} (or without --module)"
    )
