"""Workflow versions: the SHA-256 of a workflow's structure and its tasks' source code."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloacina.model.task import Task

_source_cache: dict[CodeType, str] = {}


def _source_of(func: Callable[..., Any]) -> str:
    """The source of ``func`` (cached per code object: closures made in a loop share it)."""
    code: CodeType | None = getattr(func, "__code__", None)
    if code is None:
        return repr(func)
    cached = _source_cache.get(code)
    if cached is None:
        try:
            cached = inspect.getsource(code)
        except (OSError, TypeError):
            # No file (defined in a REPL or with exec): hash the compiled code instead.
            cached = _code_fingerprint(code)
        _source_cache[code] = cached
    return cached


def _code_fingerprint(code: CodeType) -> str:
    """A process-independent description of compiled code (nested code objects included;
    their repr would hold a memory address)."""
    consts = [_code_fingerprint(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return repr((code.co_code.hex(), consts, code.co_names, code.co_varnames))


def compute_version(name: str, tasks: list[Task]) -> str:
    """The hex SHA-256 of the workflow: name, tasks, edges, policies and task sources."""
    digest = hashlib.sha256()
    digest.update(name.encode())
    for task in tasks:
        spec: dict[str, Any] = {
            "id": task.id,
            "deps": task.dependencies,
            "retry": task.retry.describe(),
            "timeout": task.timeout,
            "rule": task.trigger_rule.describe(),
            "async": task.is_async,
        }
        if task.map_over is not None:  # only then: ordinary workflows keep their versions
            spec["map"] = [task.map_over, task.max_parallel, task.allow_partial]
        if task.subworkflow is not None:  # the child it runs is part of the structure
            spec["subworkflow"] = task.subworkflow
        digest.update(json.dumps(spec, sort_keys=True).encode())
        digest.update(_source_of(task.func).encode())
    return digest.hexdigest()
