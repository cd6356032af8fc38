"""The package manifest (``manifest.toml``): what a package's workflows and tasks are.

The builder writes it from the imported code; a runner reads it to schedule a package's
workflows without importing the package (the code runs only in the package's processes).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloacina.errors import CloacinaError, PackageError
from cloacina.model.cron import CronSchedule
from cloacina.model.namespace import (
    MAX_PACKAGE_NAME,
    MAX_PACKAGE_VERSION,
    MAX_TASK_ID,
    MAX_WORKFLOW_NAME,
    MAX_WORKFLOW_VERSION,
    too_long,
)
from cloacina.model.retry import RetryPolicy
from cloacina.model.rules import rule_from_data, rule_to_data
from cloacina.model.task import Task
from cloacina.model.trigger import trigger_catalog
from cloacina.model.workflow import Workflow
from cloacina.packaging import toml_writer
from cloacina.packaging.command import CommandTask

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class TaskSpec:
    """One task as the manifest describes it."""

    id: str
    function: str  # attribute name on the workflow class ("" for command tasks)
    dependencies: tuple[str, ...] = ()
    is_async: bool = False
    timeout: float | None = None
    retry: Mapping[str, Any] = field(default_factory=dict)
    trigger_rule: Mapping[str, Any] = field(default_factory=lambda: {"kind": "all_success"})
    command: tuple[str, ...] | None = None
    description: str = ""
    #: Dynamic fan-out: ``{"over": key, "max_parallel": n, "allow_partial": b}`` (None: no).
    map: Mapping[str, Any] | None = None
    #: A sub-workflow task: the name of the workflow it runs as a child (None: no).
    subworkflow: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "dependencies": list(self.dependencies),
            "is_async": self.is_async,
            "timeout": self.timeout,
            "description": self.description or None,
            "command": list(self.command) if self.command else None,
            "retry": dict(self.retry),
            "trigger_rule": dict(self.trigger_rule),
            **({"map": dict(self.map)} if self.map else {}),
            **({"subworkflow": self.subworkflow} if self.subworkflow else {}),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TaskSpec:
        command = data.get("command")
        return cls(
            id=str(data["id"]),
            function=str(data.get("function", "")),
            dependencies=tuple(str(d) for d in data.get("dependencies", [])),
            is_async=bool(data.get("is_async", False)),
            timeout=float(data["timeout"]) if data.get("timeout") is not None else None,
            retry=dict(data.get("retry", {})),
            trigger_rule=dict(data.get("trigger_rule", {"kind": "all_success"})),
            command=tuple(str(c) for c in command) if command else None,
            description=str(data.get("description") or ""),
            map=dict(data["map"]) if data.get("map") else None,
            subworkflow=str(data["subworkflow"]) if data.get("subworkflow") else None,
        )


@dataclass(frozen=True)
class WorkflowSpec:
    """One workflow as the manifest describes it."""

    name: str
    version: str
    module: str
    qualname: str
    tasks: tuple[TaskSpec, ...]
    description: str = ""
    author: str = ""
    #: Seconds a run may take before it raises a ``run_deadline`` alert (None: none).
    deadline: float | None = None
    #: Declared cron schedules (:meth:`cloacina.model.cron.CronSchedule.to_dict` each).
    schedules: tuple[Mapping[str, Any], ...] = ()
    #: Declared triggers that start this workflow (:meth:`cloacina.model.trigger.Trigger.
    #: to_dict` each): polled in the package's processes.
    triggers: tuple[Mapping[str, Any], ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "class": self.qualname,
            "description": self.description or None,
            "author": self.author or None,
            "deadline": self.deadline,
            "schedules": [dict(s) for s in self.schedules] or None,
            "triggers": [dict(t) for t in self.triggers] or None,
            "tasks": [t.to_data() for t in self.tasks],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> WorkflowSpec:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            module=str(data["module"]),
            qualname=str(data["class"]),
            tasks=tuple(TaskSpec.from_data(t) for t in data.get("tasks", [])),
            description=str(data.get("description") or ""),
            author=str(data.get("author") or ""),
            deadline=float(data["deadline"]) if data.get("deadline") is not None else None,
            schedules=tuple(dict(s) for s in data.get("schedules") or ()),
            triggers=tuple(dict(t) for t in data.get("triggers") or ()),
        )

    def cron_schedules(self) -> list[CronSchedule]:
        """The declared schedules, validated (a bad one is a :class:`PackageError`)."""
        try:
            return [CronSchedule.from_dict(s) for s in self.schedules]
        except (CloacinaError, KeyError, TypeError, ValueError) as exc:
            raise PackageError(
                f"manifest.toml: a schedule of workflow {self.name!r} is invalid: {exc}"
            ) from exc

    def structure(self) -> list[tuple[str, tuple[str, ...]]]:
        """``(task id, dependencies)`` pairs: what must match between manifest and code."""
        return [(t.id, t.dependencies) for t in self.tasks]


@dataclass(frozen=True)
class Manifest:
    """Everything ``manifest.toml`` says."""

    package: str
    version: str
    workflows: tuple[WorkflowSpec, ...]
    modules: tuple[str, ...]
    description: str = ""
    author: str = ""
    requires_python: str = ""

    def to_toml(self) -> str:
        return toml_writer.dumps(
            {
                "format": MANIFEST_FORMAT,
                "package": {
                    "name": self.package,
                    "version": self.version,
                    "description": self.description,
                    "author": self.author,
                    "requires_python": self.requires_python,
                    "modules": list(self.modules),
                },
                "workflows": [w.to_data() for w in self.workflows],
            }
        )

    @classmethod
    def from_toml(cls, text: str) -> Manifest:
        try:
            data = tomllib.loads(text)
            pkg = data["package"]
            if int(data.get("format", 1)) > MANIFEST_FORMAT:
                raise PackageError(
                    f"manifest format {data['format']} is newer than this cloacina reads "
                    f"({MANIFEST_FORMAT}); upgrade cloacina"
                )
            manifest = cls(
                package=str(pkg["name"]),
                version=str(pkg["version"]),
                description=str(pkg.get("description", "")),
                author=str(pkg.get("author", "")),
                requires_python=str(pkg.get("requires_python", "")),
                modules=tuple(str(m) for m in pkg.get("modules", [])),
                workflows=tuple(WorkflowSpec.from_data(w) for w in data.get("workflows", [])),
            )
            manifest.check_lengths()
            return manifest
        except PackageError:
            raise
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"manifest.toml is malformed: {exc}") from exc

    def check_lengths(self) -> None:
        """A :class:`PackageError` for a name longer than the database holds: a manifest not
        written by the builder (which checks them) must not fail only on PostgreSQL."""
        names = [
            ("package name", self.package, MAX_PACKAGE_NAME),
            ("package version", self.version, MAX_PACKAGE_VERSION),
        ]
        for wf in self.workflows:
            names += [
                ("workflow name", wf.name, MAX_WORKFLOW_NAME),
                (f"version of workflow {wf.name[:50]!r}", wf.version, MAX_WORKFLOW_VERSION),
            ]
            names += [("task id", t.id, MAX_TASK_ID) for t in wf.tasks]
        for kind, value, limit in names:
            problem = too_long(kind, value, limit)
            if problem:
                raise PackageError(f"manifest.toml: {problem}")

    def workflow(self, name: str) -> WorkflowSpec | None:
        for wf in self.workflows:
            if wf.name == name:
                return wf
        return None


# ---- from live code ---------------------------------------------------------------------------
def describe_task(task: Task, attribute: str) -> TaskSpec:
    return TaskSpec(
        id=task.id,
        function=attribute,
        dependencies=task.dependencies,
        is_async=task.is_async,
        timeout=task.timeout,
        retry=task.retry.describe(),
        trigger_rule=rule_to_data(task.trigger_rule),
        command=getattr(task, "command", None),
        description=task.description.strip(),
        map=(
            None
            if task.map_over is None
            else {
                "over": task.map_over,
                "max_parallel": task.max_parallel,
                "allow_partial": task.allow_partial,
            }
        ),
        subworkflow=task.subworkflow,
    )


def describe_workflow(wf: Workflow) -> WorkflowSpec:
    """The manifest entry of a workflow defined in code (a ``@packaged_workflow`` class)."""
    cls = wf.source
    if cls is None:
        raise PackageError(f"workflow {wf.name!r} was not defined with a decorated class")
    attributes = {}
    for attr, value in vars(cls).items():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, Task):
            attributes[value.id] = attr
    return WorkflowSpec(
        name=wf.name,
        version=wf.version,
        module=cls.__module__,
        qualname=cls.__qualname__,
        tasks=tuple(describe_task(t, attributes.get(t.id, "")) for t in wf.tasks.values()),
        description=wf.description,
        author=wf.author,
        deadline=wf.deadline,
        schedules=tuple(s.to_dict() for s in wf.schedules),
        # The package's @trigger functions that start this workflow (this process imported
        # the package's code: its triggers are in the process's catalog).
        triggers=tuple(t.to_dict() for t in trigger_catalog.all() if t.starts(wf)),
    )


# ---- to a schedulable workflow, without the code ------------------------------------------------
def retry_from_data(data: Mapping[str, Any]) -> RetryPolicy:
    """The retry policy a manifest describes (``retry_on`` is applied in the package process)."""
    if not data:
        return RetryPolicy(max_attempts=1, initial_delay=0.0, jitter=False)
    return RetryPolicy(
        max_attempts=int(data.get("max_attempts", 1)),
        backoff=data.get("backoff", "exponential"),
        initial_delay=float(data.get("initial_delay", 1.0)),
        max_delay=float(data.get("max_delay", 60.0)),
        jitter=bool(data.get("jitter", True)),
    )


def _remote_body(package: str, task_id: str) -> Callable[..., Any]:
    def body(context: Any) -> None:
        raise PackageError(
            f"task {task_id!r} belongs to package {package!r}: it runs in the package's own "
            "processes, not in the runner"
        )

    body.__name__ = task_id
    return body


def workflow_from_spec(spec: WorkflowSpec, package: str) -> Workflow:
    """A :class:`Workflow` the engine can schedule from a manifest entry; its task bodies run
    in the package's processes. The version is the one the builder computed from the code."""
    tasks = [
        (CommandTask if t.command else Task)(
            _remote_body(package, t.id),
            id=t.id,
            dependencies=t.dependencies,
            retry=retry_from_data(t.retry),
            timeout=t.timeout,
            trigger_rule=rule_from_data(t.trigger_rule),
            description=t.description,
        )
        for t in spec.tasks
    ]
    for task, t in zip(tasks, spec.tasks, strict=True):
        task.is_async = t.is_async
        if isinstance(task, CommandTask) and t.command:
            task.command = t.command  # the loader runs it instead of calling a body
        if t.subworkflow:  # the engine starts a child run instead of calling a body
            task.subworkflow = t.subworkflow
        if t.map:
            parallel = t.map.get("max_parallel")
            task.set_map(
                str(t.map["over"]),
                None if parallel is None else int(parallel),
                bool(t.map.get("allow_partial", False)),
            )
    return Workflow.from_tasks(
        spec.name,
        tasks,
        description=spec.description,
        package=package,
        author=spec.author,
        version=spec.version,
        deadline=spec.deadline,
        schedules=spec.cron_schedules(),
    )
