"""cloaca's computation graphs, the trigger-less kind a task invokes (``@task(invokes=g)``).

A trigger-less graph is plain function composition inside one task attempt: its nodes run
in topological order on the task's worker thread, and each fired terminal's value is put
into the task's output context under the node's name. That needs nothing from the engine:
the attempt is the unit Cloacina retries and records. Reactor-triggered graphs (fed by
accumulators) have no Cloacina counterpart: ``@reactor`` and ``reactor=`` are accepted and
validated as in cloaca, but nothing fires them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar

from cloacina.compat.cloaca.context import Context, to_json_value

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])
_local = threading.local()
_lock = threading.Lock()
#: Graphs whose ``with`` block has run, by name.
_graphs: dict[str, ComputationGraphBuilder] = {}
_reactors: dict[str, type] = {}


def _scopes() -> list[dict[str, Callable[..., Any]]]:
    scopes: list[dict[str, Callable[..., Any]]] | None = getattr(_local, "scopes", None)
    if scopes is None:
        scopes = _local.scopes = []
    return scopes


def node(func: F) -> F:
    """Declare a node of the enclosing ``ComputationGraphBuilder`` (by function name)."""
    scopes = _scopes()
    if not scopes:
        raise ValueError(
            "@cloaca.node must be used inside a ComputationGraphBuilder context manager"
        )
    scopes[-1][func.__name__] = func
    return func


def reactor(*, name: str, accumulators: list[str], mode: str = "when_any") -> Callable[[C], C]:
    """Declare a reactor class (``NAME``, ``ACCUMULATORS``, ``REACTION_MODE``)."""
    if not name:
        raise ValueError("@cloaca.reactor: name must not be empty")
    if not accumulators:
        raise ValueError("@cloaca.reactor: accumulators must not be empty")
    if len(set(accumulators)) != len(accumulators):
        raise ValueError("@cloaca.reactor: accumulators must be unique")
    if mode not in ("when_any", "when_all"):
        raise ValueError(f"@cloaca.reactor: mode must be 'when_any' or 'when_all', not {mode!r}")

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError("@cloaca.reactor decorates a class")
        cls.NAME = name  # type: ignore[attr-defined]
        cls.ACCUMULATORS = list(accumulators)  # type: ignore[attr-defined]
        cls.REACTION_MODE = mode  # type: ignore[attr-defined]
        with _lock:
            _reactors[name] = cls
        return cls

    return decorate


class ComputationGraphBuilder:
    """``with ComputationGraphBuilder("g", graph={...}): @node ...`` declares a graph.

    ``graph`` maps each node to ``{"next": target}`` (linear), ``{"routes": {variant:
    target}}`` (routing: the node returns ``(variant, value)``) or ``{}`` (a terminal).
    """

    def __init__(
        self,
        name: str,
        *,
        graph: Mapping[str, Any],
        reactor: type | None = None,
        react: object = None,
    ) -> None:
        if react is not None:
            raise ValueError("ComputationGraphBuilder(react=...) was removed: pass reactor=")
        if reactor is not None and not all(
            hasattr(reactor, a) for a in ("NAME", "ACCUMULATORS", "REACTION_MODE")
        ):
            raise TypeError("reactor= takes a class decorated with @cloaca.reactor")
        self._name = name
        self._reactor = reactor
        self._spec: dict[str, dict[str, Any]] = {}
        for key, spec in dict(graph).items():
            if not isinstance(spec, Mapping):
                raise TypeError(f"graph node '{key}': the spec must be a dict")
            if "inputs" in spec and not isinstance(spec["inputs"], list):
                raise TypeError(f"graph node '{key}': inputs must be a list")
            if "routes" in spec and not isinstance(spec["routes"], Mapping):
                raise TypeError(f"graph node '{key}': routes must be a dict")
            self._spec[str(key)] = dict(spec)
        self._nodes: dict[str, Callable[..., Any]] = {}

    @property
    def NAME(self) -> str:  # cloaca's name
        return self._name

    def __enter__(self) -> ComputationGraphBuilder:
        _scopes().append({})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        nodes = _scopes().pop()
        if exc_type is not None:
            return False
        for key, spec in self._spec.items():
            if key not in nodes:
                raise AttributeError(f"graph '{self._name}': node '{key}' has no @node function")
            if "inputs" in spec:
                if self._reactor is None:
                    raise ValueError(
                        f"graph '{self._name}': node '{key}' has inputs but the graph has no "
                        "reactor"
                    )
                known = self._reactor.ACCUMULATORS  # type: ignore[attr-defined]
                for acc in spec["inputs"]:
                    if acc not in known:
                        raise ValueError(
                            f"graph '{self._name}': input '{acc}' is not an accumulator of "
                            "its reactor"
                        )
        for key in nodes:
            if key not in self._spec:
                raise ValueError(f"graph '{self._name}': @node '{key}' is not in the topology")
        self._nodes = nodes
        with _lock:
            _graphs[self._name] = self
        return False

    def __repr__(self) -> str:
        return f"ComputationGraphBuilder(name='{self._name}', nodes={len(self._spec)})"

    def execute(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run the graph on ``Context(inputs)``; returns the fired terminals' values."""
        return run_graph(self, Context(inputs))


def check_invokes(obj: object) -> None:
    """``@task(invokes=obj)``: a registered, trigger-less graph."""
    name = getattr(obj, "NAME", None)
    if not isinstance(name, str):
        raise ValueError(
            "@cloaca.task(invokes=...): expected a ComputationGraphBuilder instance (with NAME)"
        )
    with _lock:
        graph = _graphs.get(name)
    if graph is None:
        raise ValueError(
            f"@cloaca.task(invokes=...): graph '{name}' is not registered. The `with "
            "ComputationGraphBuilder(...)` block must run before the @cloaca.task decorator "
            "that references it."
        )
    if graph._reactor is not None:
        raise ValueError(
            f"@cloaca.task(invokes=...): graph '{name}' is reactor-triggered. Tasks may only "
            "invoke trigger-less graphs"
        )


def _successors(spec: Mapping[str, Any]) -> list[str]:
    if "routes" in spec:
        return [str(t) for t in spec["routes"].values()]
    if "next" in spec:
        return [str(spec["next"])]
    return []


def run_graph(graph: ComputationGraphBuilder, ctx: Context) -> dict[str, Any]:
    """Run a trigger-less graph on ``ctx``: the values of the terminals that fired."""
    spec = graph._spec
    incoming: dict[str, int] = dict.fromkeys(spec, 0)
    for s in spec.values():
        for target in _successors(s):
            incoming[target] = incoming.get(target, 0) + 1
    ready = [n for n in spec if incoming[n] == 0]
    fed: dict[str, Any] = {n: ctx for n in ready}
    fired: dict[str, Any] = {}
    while ready:
        name = ready.pop(0)
        s = spec[name]
        value = None
        active = name in fed
        if active:
            try:
                value = graph._nodes[name](fed[name])
            except Exception as exc:
                raise RuntimeError(
                    f"computation graph '{graph._name}' invocation failed: node '{name}' "
                    f"failed: {type(exc).__name__}: {exc}"
                ) from exc
        chosen: dict[str, Any] = {}
        if active and "routes" in s:
            if not (isinstance(value, tuple) and len(value) == 2):
                raise RuntimeError(
                    f"computation graph '{graph._name}' invocation failed: routing node "
                    f"'{name}' must return (variant, value), got {value!r}"
                )
            variant, payload = value
            target = s["routes"].get(variant)
            if target is None:
                raise RuntimeError(
                    f"computation graph '{graph._name}' invocation failed: node '{name}' "
                    f"returned unknown variant {variant!r}"
                )
            chosen[str(target)] = payload
        elif active and "next" in s:
            chosen[str(s["next"])] = value
        elif active:
            fired[name] = to_json_value(value)
        for target in _successors(s):
            if target in chosen:
                fed[target] = chosen[target]
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    return fired


def invoke(graph_ref: Any, post: Callable[..., Any] | None, ctx: Context) -> dict[str, Any]:
    """After a task's body: run its graph, route the terminals into ``ctx``, run ``post``."""
    with _lock:
        graph = _graphs[graph_ref.NAME]
    for name, value in run_graph(graph, ctx).items():
        ctx.set(name, value)
    if post is not None:
        # The hook gets a copy: what it returns becomes the output, else the context as
        # the graph left it stays (as in cloaca).
        returned = post(Context._adopt(ctx.to_dict()))
        if isinstance(returned, Context):
            return returned._data
    return ctx._data
