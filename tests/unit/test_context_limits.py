"""One rule for context keys (strings, at every depth) and a nesting limit (issue 9.22).

Before: nested non-string keys were silently turned into strings while top-level ones were
refused, and deeply nested data ended in a ``RecursionError`` traceback.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloacina.errors import ContextError, ContextSerializationError, ContextTooDeepError
from cloacina.model.context import (
    MAX_DEPTH,
    check_context_data,
    dumps_context,
    loads_context,
    parse_context_json,
)

FAST = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def nested(levels: int, leaf: Any = 1, kind: str = "dict") -> Any:
    """``levels`` containers inside each other (built without recursion)."""
    value = leaf
    for _ in range(levels):
        value = {"k": value} if kind == "dict" else [value]
    return value


def depth(value: Any) -> int:
    """Levels of objects and arrays in ``value`` (the obvious recursive definition)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# ---- keys ------------------------------------------------------------------------------------
def test_nested_non_string_keys_are_refused_naming_the_path() -> None:
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"fine": 1, "a": {"b": {1: "x"}}})
    err = info.value
    assert err.key == "a"
    assert "context['a']['b'][1]" in str(err)
    assert "of type int" in str(err) and "keys must be strings at every depth" in str(err)


def test_non_string_keys_inside_lists_are_refused() -> None:
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"rows": [{"id": 1}, {2.5: "x"}]})
    assert "context['rows'][1][2.5]" in str(info.value)
    assert "float" in str(info.value)


def test_top_level_non_string_keys_follow_the_same_rule() -> None:
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({1: "x"})  # type: ignore[dict-item]  # the non-string key under test
    assert "context[1]" in str(info.value)
    assert "keys must be strings at every depth" in str(info.value)


# ---- depth -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dict", "list"])
def test_data_at_the_depth_limit_is_stored(kind: str) -> None:
    data = {"a": nested(MAX_DEPTH - 1, kind=kind)}
    assert depth(data) == MAX_DEPTH
    assert loads_context(dumps_context(data)) == data


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_data_over_the_depth_limit_is_refused_naming_the_key(kind: str) -> None:
    with pytest.raises(ContextTooDeepError) as info:
        dumps_context({"ok": 1, "deep": nested(MAX_DEPTH, kind=kind)})
    err = info.value
    assert isinstance(err, ContextSerializationError)  # what callers already catch
    assert err.key == "deep"
    assert f"more than {MAX_DEPTH} levels deep" in str(err)
    assert "context['deep']" in str(err)


@pytest.mark.parametrize("levels", [2_000, 100_000])
def test_very_deep_data_is_a_context_error_not_a_recursion_error(levels: int) -> None:
    with pytest.raises(ContextTooDeepError) as info:
        dumps_context({"deep": nested(levels, kind="list")})
    assert info.value.key == "deep"


def test_a_cycle_is_still_named_as_such() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"loop": loop})
    assert info.value.key == "loop"


# ---- parsing input (the CLI's --context / --context-file) ------------------------------------
@pytest.mark.parametrize("levels", [MAX_DEPTH, 5_000, 200_000])
def test_parse_refuses_deep_json_text(levels: int) -> None:
    text = '{"a":' + "[" * levels + "]" * levels + "}"
    with pytest.raises(ContextTooDeepError, match=f"more than {MAX_DEPTH} levels"):
        parse_context_json(text)


def test_parse_accepts_json_at_the_limit_and_refuses_non_objects() -> None:
    levels = MAX_DEPTH - 1
    text = '{"a":' + "[" * levels + "]" * levels + "}"
    assert depth(parse_context_json(text)) == MAX_DEPTH
    with pytest.raises(ContextError, match="must be a JSON object"):
        parse_context_json("[1]")
    with pytest.raises(json.JSONDecodeError):
        parse_context_json("{nope")


# ---- properties ------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3))
str_keys = st.sampled_from(["a", "b", "c"])
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(str_keys, children, max_size=3)
    ),
    max_leaves=10,
)
contexts = st.dictionaries(str_keys, json_values, max_size=3)


@FAST
@given(
    contexts, st.integers(min_value=0, max_value=MAX_DEPTH + 5), st.sampled_from(["dict", "list"])
)
def test_stored_iff_within_the_depth_limit(data: dict[str, Any], wrap: int, kind: str) -> None:
    """Whatever the shape: data is stored (and round-trips) exactly when its depth is at
    most MAX_DEPTH, else refused with a ContextTooDeepError."""
    wrapped = {"w": nested(wrap, leaf=data, kind=kind)}
    if depth(wrapped) <= MAX_DEPTH:
        assert loads_context(dumps_context(wrapped)) == wrapped
    else:
        with pytest.raises(ContextTooDeepError) as info:
            dumps_context(wrapped)
        assert info.value.key == "w"


def containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of every object in ``value`` (where a key could be added)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        found.append(path)
        for k, v in value.items():
            found += containers(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += containers(v, (*path, i))
    return found


@FAST
@given(contexts, st.data(), st.sampled_from([1, 2.5, None, True, (1, 2)]))
def test_a_non_string_key_anywhere_is_refused_at_its_path(
    data: dict[str, Any], draw: st.DataObject, bad: Any
) -> None:
    path = draw.draw(st.sampled_from(containers(data)))
    target = data
    for step in path:
        target = target[step]
    target[bad] = "x"
    with pytest.raises(ContextSerializationError) as info:
        dumps_context(data)
    where = "context" + "".join(f"[{s!r}]" for s in (*path, bad))
    assert where in str(info.value)
    with pytest.raises(ContextSerializationError):
        check_context_data(data)


def test_a_cycle_deep_inside_is_named_at_its_path() -> None:
    inner: dict[str, Any] = {"n": 1}
    inner["self"] = [inner]
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"ok": 1, "x": {"y": inner}})
    assert info.value.key == "x"
    assert "context['x']['y']['self'][0] contains itself" in str(info.value)


def test_shared_values_that_are_not_cycles_are_fine() -> None:
    shared = {"v": [1, 2]}
    data = {"a": shared, "b": [shared, shared]}
    assert loads_context(dumps_context(data)) == data
