"""Hypothesis property tests of the pure model: graphs, deep_merge and retry delays."""

from __future__ import annotations

import copy
import random
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cloacina import Context, CycleError, RetryPolicy
from cloacina.model.context import deep_merge, dumps_context, loads_context
from cloacina.model.graph import build_graph

FAST = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Deps = dict[str, list[str]]

# -- graphs --------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 14) -> Deps:
    """A random DAG: edges only from earlier to later nodes, then declared in shuffled order."""
    n = draw(st.integers(min_value=min_nodes, max_value=max_nodes))
    nodes = [f"t{i}" for i in range(n)]
    deps: Deps = {}
    for i, node in enumerate(nodes):
        earlier = nodes[:i]
        chosen = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        deps[node] = chosen
    declared = draw(st.permutations(nodes))
    return {node: deps[node] for node in declared}


def descendants(deps: Deps, start: str) -> set[str]:
    """Every task that depends on ``start``, directly or not."""
    dependents: dict[str, list[str]] = {t: [] for t in deps}
    for task_id, task_deps in deps.items():
        for dep in task_deps:
            dependents[dep].append(task_id)
    seen: set[str] = set()
    stack = [start]
    while stack:
        for child in dependents[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def reference_order(deps: Deps) -> list[str]:
    """The slow, obvious rule: repeatedly take the earliest-declared task whose deps are done."""
    done: list[str] = []
    remaining = list(deps)
    while remaining:
        nxt = next(t for t in remaining if all(d in done for d in deps[t]))
        done.append(nxt)
        remaining.remove(nxt)
    return done


@FAST
@given(dags())
def test_order_respects_every_edge_and_holds_every_node_once(deps: Deps) -> None:
    graph = build_graph("prop", deps)
    assert sorted(graph.order) == sorted(deps)
    assert len(set(graph.order)) == len(graph.order)
    position = {t: i for i, t in enumerate(graph.order)}
    for task_id, task_deps in deps.items():
        for dep in task_deps:
            assert position[dep] < position[task_id]


@FAST
@given(dags())
def test_order_is_deterministic_and_ties_follow_declaration_order(deps: Deps) -> None:
    graph = build_graph("prop", deps)
    assert graph == build_graph("prop", copy.deepcopy(deps))
    assert list(graph.order) == reference_order(deps)


@FAST
@given(dags())
def test_roots_and_leaves(deps: Deps) -> None:
    graph = build_graph("prop", deps)
    assert set(graph.roots) == {t for t, d in deps.items() if not d}
    depended_on = {d for task_deps in deps.values() for d in task_deps}
    assert set(graph.leaves) == set(deps) - depended_on
    for task_id, task_deps in deps.items():
        for dep in task_deps:
            assert task_id in graph.dependents[dep]


@FAST
@given(dags(min_nodes=1), st.data())
def test_back_edge_raises_a_cycle_error_with_a_real_cycle(deps: Deps, data: st.DataObject) -> None:
    # pick u and a task v that (transitively) depends on u, or u itself: making u depend on v
    # closes a cycle
    candidates = sorted((u, v) for u in deps for v in {u} | descendants(deps, u))
    u, v = data.draw(st.sampled_from(candidates))
    cyclic = {t: [*d, v] if t == u else list(d) for t, d in deps.items()}
    with pytest.raises(CycleError) as info:
        build_graph("prop", cyclic)
    cycle = info.value.cycle
    assert info.value.workflow == "prop"
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle
    for dependency, dependent in pairwise(cycle):
        assert dependency in cyclic[dependent]
    assert " -> ".join(cycle) in str(info.value)


# -- deep_merge ----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.text(max_size=3),
    st.lists(st.integers(min_value=0, max_value=3), max_size=3),
)
keys = st.sampled_from(["a", "b", "c", "d"])
json_dicts = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda children: st.dictionaries(keys, st.one_of(scalars, children), max_size=4),
    max_leaves=12,
)

# "Dicts of dicts": the kind of value at a key is fixed by its name (d* keys always hold
# dicts, s* keys always hold scalars), so no path holds a dict in one input and a scalar in
# another. That is where deep_merge is associative.
typed_dicts = st.recursive(
    st.dictionaries(st.sampled_from(["s1", "s2", "s3"]), scalars, max_size=3),
    lambda children: st.builds(
        lambda s, d: {**s, **d},
        st.dictionaries(st.sampled_from(["s1", "s2", "s3"]), scalars, max_size=3),
        st.dictionaries(st.sampled_from(["d1", "d2", "d3"]), children, max_size=3),
    ),
    max_leaves=12,
)


@FAST
@given(json_dicts, json_dicts)
def test_deep_merge_is_deterministic_and_pure(a: dict[str, Any], b: dict[str, Any]) -> None:
    before = copy.deepcopy((a, b))
    first = deep_merge(a, b)
    assert deep_merge(a, b) == first
    assert (a, b) == before


@FAST
@given(typed_dicts, typed_dicts, typed_dicts)
def test_deep_merge_is_associative_for_dicts_of_dicts(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    assert deep_merge(deep_merge(a, b), c) == deep_merge(a, deep_merge(b, c)) == deep_merge(a, b, c)


@FAST
@given(json_dicts)
def test_merging_with_empty_is_identity(a: dict[str, Any]) -> None:
    assert deep_merge(a, {}) == a
    assert deep_merge({}, a) == a
    assert deep_merge(a) == a
    assert deep_merge(a, a) == a


def check_later_wins(a: dict[str, Any], b: dict[str, Any], merged: dict[str, Any]) -> None:
    assert set(merged) == set(a) | set(b)
    for key, value in merged.items():
        if key not in b:
            assert value == a[key]
        elif isinstance(b[key], dict) and isinstance(a.get(key), dict):
            check_later_wins(a[key], b[key], value)
        else:
            assert value == b[key]  # a later scalar (or a type change) wins


@FAST
@given(json_dicts, json_dicts)
def test_later_value_wins_for_scalars(a: dict[str, Any], b: dict[str, Any]) -> None:
    check_later_wins(a, b, deep_merge(a, b))


@FAST
@given(json_dicts, json_dicts)
def test_context_merge_agrees_with_deep_merge(a: dict[str, Any], b: dict[str, Any]) -> None:
    ctx = Context(a)
    ctx.merge(b)
    assert ctx.to_dict() == deep_merge(a, b)


@FAST
@given(json_dicts)
def test_context_json_round_trip(a: dict[str, Any]) -> None:
    assert loads_context(dumps_context(a)) == a


# -- retry delays --------------------------------------------------------------------------

delays = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)


@FAST
@given(
    backoff=st.sampled_from(["exponential", "linear", "fixed"]),
    initial_delay=delays,
    max_delay=delays,
    jitter=st.booleans(),
    attempt=st.integers(min_value=-2, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_delay_is_never_negative_nor_above_max_delay(
    backoff: Any, initial_delay: float, max_delay: float, jitter: bool, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(
        backoff=backoff, initial_delay=initial_delay, max_delay=max_delay, jitter=jitter
    )
    delay = policy.delay_for(attempt, random.Random(seed))
    assert 0.0 <= delay <= max_delay


@FAST
@given(
    backoff=st.sampled_from(["exponential", "linear", "fixed"]),
    initial_delay=delays,
    max_delay=delays,
    attempt=st.integers(min_value=1, max_value=200),
)
def test_delay_without_jitter_is_monotonic(
    backoff: Any, initial_delay: float, max_delay: float, attempt: int
) -> None:
    policy = RetryPolicy(
        backoff=backoff, initial_delay=initial_delay, max_delay=max_delay, jitter=False
    )
    assert policy.delay_for(attempt) <= policy.delay_for(attempt + 1)


@FAST
@given(
    initial_delay=st.floats(min_value=0.001, max_value=100.0),
    attempt=st.integers(min_value=1, max_value=20),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_jitter_stays_within_a_quarter_of_the_uncapped_delay(
    initial_delay: float, attempt: int, seed: int
) -> None:
    jittered = RetryPolicy(initial_delay=initial_delay, max_delay=1e12)
    plain = RetryPolicy(initial_delay=initial_delay, max_delay=1e12, jitter=False)
    base = plain.delay_for(attempt)
    assume(base > 0)
    delay = jittered.delay_for(attempt, random.Random(seed))
    assert 0.75 * base <= delay <= 1.25 * base
