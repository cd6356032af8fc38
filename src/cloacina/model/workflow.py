"""Workflows: ``@workflow`` / ``@packaged_workflow`` classes and the in-process catalog."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from cloacina.errors import WorkflowDefinitionError, WorkflowNotFoundError
from cloacina.model.cron import CronSchedule
from cloacina.model.graph import Graph, build_graph, check_unique
from cloacina.model.namespace import (
    DEFAULT_TENANT,
    EMBEDDED_PACKAGE,
    MAX_PACKAGE_NAME,
    MAX_WORKFLOW_NAME,
    TaskNamespace,
    too_long,
)
from cloacina.model.subworkflow import check_recursion
from cloacina.model.task import Task
from cloacina.model.version import compute_version

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
C = TypeVar("C", bound=type)


@dataclass(eq=False)
class Workflow:
    """A validated DAG of tasks with its metadata and version."""

    name: str
    tasks: dict[str, Task]
    graph: Graph
    version: str
    description: str = ""
    package: str = EMBEDDED_PACKAGE
    author: str = ""
    source: type | None = field(default=None, repr=False)
    #: Where a packaged workflow's code lives (set by the registry; None when in-process).
    origin: Any = field(default=None, repr=False)
    #: Seconds a run may take before a ``run_deadline`` alert is raised (None: no deadline).
    #: Not part of the version: changing it changes no run's graph.
    deadline: float | None = None
    #: Cron schedules declared with the workflow (``schedules=[cron(...)]``); created in the
    #: database when the workflow (or its package) is registered. Not part of the version.
    schedules: tuple[CronSchedule, ...] = ()

    @classmethod
    def from_tasks(
        cls,
        name: str,
        tasks: Iterable[Task],
        *,
        description: str = "",
        package: str = EMBEDDED_PACKAGE,
        author: str = "",
        source: type | None = None,
        version: str | None = None,
        deadline: float | timedelta | None = None,
        schedules: Iterable[CronSchedule] | None = None,
    ) -> Workflow:
        """Validate ``tasks`` (ids unique, dependencies known, no cycle) and build a workflow.

        ``version`` defaults to the hash of the tasks; a package's manifest passes the one its
        builder computed from the code.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise WorkflowDefinitionError(
                f"invalid workflow name {name!r}: start with a letter or '_' and use letters, "
                "digits, '_', '.' and '-'"
            )
        problem = too_long("workflow name", name, MAX_WORKFLOW_NAME)
        if problem:
            raise WorkflowDefinitionError(problem)
        # A manifest's package name comes here without passing @packaged_workflow.
        check_package_name(package)
        task_list = list(tasks)
        check_unique(name, [t.id for t in task_list])
        graph = build_graph(name, {t.id: t.dependencies for t in task_list})
        by_id = {t.id: t for t in task_list}
        ordered = {task_id: by_id[task_id] for task_id in graph.order}
        return cls(
            name=name,
            tasks=ordered,
            graph=graph,
            version=version or compute_version(name, list(ordered.values())),
            description=description,
            package=package,
            author=author,
            source=source,
            deadline=check_deadline(name, deadline),
            schedules=check_schedules(name, schedules),
        )

    def namespace(self, task_id: str, tenant: str = DEFAULT_TENANT) -> TaskNamespace:
        """The full ``tenant::package::workflow::task`` name of one of this workflow's tasks."""
        return TaskNamespace(tenant, self.package, self.name, task_id)

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} tasks={len(self.tasks)} version={self.version[:12]}>"


class WorkflowCatalog:
    """The workflows this process knows by name (and every version it has seen)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Workflow] = {}
        self._versions: dict[tuple[str, str], Workflow] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped on every change, so users can cache what they derive from the catalog."""
        return self._generation

    def add(self, wf: Workflow, *, default: bool = True) -> None:
        """Know ``wf``; with ``default`` it becomes the one its plain name means, else only
        when the name is new (a registry adds every version, then each name's default)."""
        with self._lock:
            if default or wf.name not in self._latest:
                self._latest[wf.name] = wf
            self._versions[(wf.name, wf.version)] = wf
            self._generation += 1

    def get(self, name: str) -> Workflow:
        try:
            return self._latest[name]
        except KeyError:
            known = ", ".join(sorted(self._latest)) or "none"
            raise WorkflowNotFoundError(
                f"no workflow named {name!r} (known: {known}); define it with "
                "@workflow(name=...) and import its module before running it, or register the "
                "package that defines it"
            ) from None

    def find(self, name: str, version: str | None = None) -> Workflow | None:
        if version is None:
            return self._latest.get(name)
        return self._versions.get((name, version))

    def names(self) -> list[str]:
        return sorted(self._latest)

    def all_versions(self) -> list[Workflow]:
        """Every version of every workflow this process has seen."""
        return list(self._versions.values())

    def all(self) -> list[Workflow]:
        return [self._latest[n] for n in sorted(self._latest)]

    def remove_version(self, name: str, version: str) -> None:
        """Forget one version; the newest remaining one becomes the default."""
        with self._lock:
            self._versions.pop((name, version), None)
            latest = self._latest.get(name)
            if latest is not None and latest.version == version:
                rest = [w for (n, _v), w in self._versions.items() if n == name]
                if rest:
                    self._latest[name] = rest[-1]
                else:
                    del self._latest[name]
            self._generation += 1

    def remove(self, name: str) -> None:
        with self._lock:
            self._latest.pop(name, None)
            for key in [k for k in self._versions if k[0] == name]:
                del self._versions[key]
            self._generation += 1


#: Every workflow defined with ``@workflow`` / ``@packaged_workflow`` in this process.
catalog = WorkflowCatalog()


class CatalogView(WorkflowCatalog):
    """Two catalogs seen as one: a runner's registered packages first, then the workflows
    defined in this process. Writes go to the first."""

    def __init__(self, first: WorkflowCatalog, second: WorkflowCatalog) -> None:
        self.first = first
        self.second = second

    @property
    def generation(self) -> int:
        return self.first.generation + self.second.generation

    def add(self, wf: Workflow, *, default: bool = True) -> None:
        self.first.add(wf, default=default)

    def get(self, name: str) -> Workflow:
        found = self.first.find(name)
        return found if found is not None else self.second.get(name)

    def find(self, name: str, version: str | None = None) -> Workflow | None:
        found = self.first.find(name, version)
        return found if found is not None else self.second.find(name, version)

    def names(self) -> list[str]:
        return sorted(set(self.first.names()) | set(self.second.names()))

    def all_versions(self) -> list[Workflow]:
        return self.first.all_versions() + self.second.all_versions()

    def all(self) -> list[Workflow]:
        return [self.get(name) for name in self.names()]

    def remove_version(self, name: str, version: str) -> None:
        self.first.remove_version(name, version)

    def remove(self, name: str) -> None:
        self.first.remove(name)


def _collect_tasks(cls: type) -> list[Task]:
    tasks: list[Task] = []
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, Task):
            tasks.append(value)
    return tasks


def check_deadline(workflow: str, deadline: object) -> float | None:
    """A workflow's ``deadline=`` in seconds (a number or a timedelta), or None."""
    if deadline is None:
        return None
    if isinstance(deadline, timedelta):
        deadline = deadline.total_seconds()
    if (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not math.isfinite(deadline)
        or deadline <= 0
    ):
        raise WorkflowDefinitionError(
            f"invalid deadline {deadline!r} for workflow {workflow!r}: give the seconds a run "
            "may take (a positive number or a timedelta), or None for no deadline"
        )
    return float(deadline)


def check_schedules(
    workflow: str, schedules: Iterable[CronSchedule] | None
) -> tuple[CronSchedule, ...]:
    """A workflow's ``schedules=``: :func:`cloacina.cron` declarations with distinct names."""
    if schedules is None:
        return ()
    if isinstance(schedules, CronSchedule):
        schedules = [schedules]
    out = tuple(schedules)
    for item in out:
        if not isinstance(item, CronSchedule):
            raise WorkflowDefinitionError(
                f"workflow {workflow!r}: schedules= takes cron(...) declarations, not {item!r} "
                "(write schedules=[cron('0 2 * * *', timezone='Europe/Berlin')])"
            )
    names = [s.name for s in out if s.name is not None]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise WorkflowDefinitionError(
            f"workflow {workflow!r} declares two schedules named {doubled[0]!r}: name each "
            "differently"
        )
    return out


def _decorate(
    cls: type,
    name: str | None,
    description: str | None,
    package: str,
    author: str,
    deadline: float | timedelta | None = None,
    schedules: Iterable[CronSchedule] | None = None,
) -> Workflow:
    if not isinstance(cls, type):
        raise WorkflowDefinitionError(
            f"@workflow decorates a class whose body holds @task functions, not {cls!r}"
        )
    wf = Workflow.from_tasks(
        name or cls.__name__,
        _collect_tasks(cls),
        description=description if description is not None else (cls.__doc__ or "").strip(),
        package=package,
        author=author,
        source=cls,
        deadline=deadline,
        schedules=schedules,
    )
    check_recursion(wf, catalog)  # before it is known: a refused workflow stays unknown
    cls.__cloacina_workflow__ = wf  # type: ignore[attr-defined]
    catalog.add(wf)
    return wf


def workflow(
    name: str | None = None,
    *,
    description: str | None = None,
    deadline: float | timedelta | None = None,
    schedules: Iterable[CronSchedule] | None = None,
) -> Callable[[C], C]:
    """Declare an embedded workflow: a class whose body holds ``@task`` functions.

    The workflow is validated at once and registered in this process under ``name`` (default:
    the class name); the class stays a class and its tasks stay callable. ``deadline``
    (seconds, or a timedelta): a run still unfinished that long after it started raises a
    ``run_deadline`` alert (it goes on running). ``schedules=[cron("0 2 * * *", ...)]``
    declares cron schedules, created in the database by the runners that know the workflow
    (``runner.register_schedules()``, called when a runner that executes tasks starts).
    """

    def decorate(cls: C) -> C:
        _decorate(cls, name, description, EMBEDDED_PACKAGE, "", deadline, schedules)
        return cls

    return decorate


def packaged_workflow(
    name: str | None = None,
    *,
    package: str,
    description: str | None = None,
    author: str = "",
    deadline: float | timedelta | None = None,
    schedules: Iterable[CronSchedule] | None = None,
) -> Callable[[C], C]:
    """Declare a workflow that ships in the ``.cloacina`` package ``package`` (``deadline``
    as for ``@workflow``). ``schedules`` go in the package's manifest and are created when
    the package is registered, removed with it.

    Imported into a process it registers there like ``@workflow`` (handy for tests).
    """
    check_package_name(package)

    def decorate(cls: C) -> C:
        _decorate(cls, name, description, package, author, deadline, schedules)
        return cls

    return decorate


def check_package_name(package: object) -> None:
    """A :class:`WorkflowDefinitionError` unless ``package`` is a valid package name."""
    if not isinstance(package, str) or not _NAME.match(package):
        raise WorkflowDefinitionError(
            f"invalid package name {package!r}: use letters, digits, '_', '.' and '-'"
        )
    problem = too_long("package name", package, MAX_PACKAGE_NAME)
    if problem:
        raise WorkflowDefinitionError(problem)


def workflow_of(obj: Any) -> Workflow:
    """The :class:`Workflow` behind a decorated class (or the workflow itself)."""
    if isinstance(obj, Workflow):
        return obj
    wf = getattr(obj, "__cloacina_workflow__", None)
    if not isinstance(wf, Workflow):
        raise WorkflowDefinitionError(f"{obj!r} is not a @workflow class")
    return wf
