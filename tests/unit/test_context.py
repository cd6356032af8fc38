"""Context: the dict-like JSON holder passed between tasks, deep_merge and (de)serialisation."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

import pytest

from cloacina import Context, ContextError
from cloacina.errors import ContextKeyError, ContextSerializationError
from cloacina.model.context import as_context_dict, deep_merge, dumps_context, loads_context

# -- reading -------------------------------------------------------------------------------


def test_get_returns_value_or_default() -> None:
    ctx = Context({"a": 1, "none": None})
    assert ctx.get("a") == 1
    assert ctx.get("missing") is None
    assert ctx.get("missing", 42) == 42
    assert ctx.get("none", "default") is None  # a stored None is a value, not "absent"


def test_getitem_missing_key_is_a_context_key_error_naming_the_key() -> None:
    ctx = Context({"present": 1})
    assert ctx["present"] == 1
    with pytest.raises(ContextKeyError) as info:
        ctx["absent"]
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ContextError)
    assert "'absent'" in str(info.value)
    assert "context.get" in str(info.value)


def test_contains_len_keys_iter_items() -> None:
    ctx = Context()
    assert len(ctx) == 0
    assert "x" not in ctx
    ctx.insert("b", 2)
    ctx.insert("a", 1)
    assert "a" in ctx
    assert "b" in ctx
    assert "c" not in ctx
    assert 3 not in ctx  # non-string probes are fine, just absent
    assert len(ctx) == 2
    assert ctx.keys() == ["b", "a"]  # insertion order
    assert list(ctx) == ["b", "a"]
    assert ctx.items() == [("b", 2), ("a", 1)]


def test_to_dict_is_a_copy() -> None:
    ctx = Context({"a": 1})
    out = ctx.to_dict()
    assert out == {"a": 1}
    assert type(out) is dict
    out["b"] = 2
    assert "b" not in ctx


def test_constructor_copies_the_mapping() -> None:
    source: dict[str, Any] = {"a": 1}
    ctx = Context(source)
    source["b"] = 2
    ctx.set("c", 3)
    assert "b" not in ctx
    assert "c" not in source


def test_equality_with_context_and_mapping_and_unhashable() -> None:
    assert Context({"a": 1}) == Context({"a": 1})
    assert Context({"a": 1}) == {"a": 1}
    assert Context({"a": 1}) != {"a": 2}
    assert Context({"a": 1}) != "a"
    with pytest.raises(TypeError):
        hash(Context())


def test_repr_shows_data() -> None:
    assert repr(Context({"a": 1})) == "Context({'a': 1})"


# -- writing -------------------------------------------------------------------------------


def test_insert_adds_a_new_key() -> None:
    ctx = Context()
    ctx.insert("k", {"nested": [1, 2]})
    assert ctx["k"] == {"nested": [1, 2]}


def test_insert_existing_key_raises_and_keeps_the_old_value() -> None:
    ctx = Context({"k": 1})
    with pytest.raises(ContextKeyError) as info:
        ctx.insert("k", 2)
    message = str(info.value)
    assert "'k'" in message
    assert "already exists" in message
    assert "update" in message
    assert ctx["k"] == 1


def test_insert_existing_key_with_none_value_still_raises() -> None:
    ctx = Context({"k": None})
    with pytest.raises(ContextKeyError):
        ctx.insert("k", 1)


def test_update_changes_an_existing_key() -> None:
    ctx = Context({"k": 1})
    ctx.update("k", 2)
    assert ctx["k"] == 2


def test_update_missing_key_raises_and_adds_nothing() -> None:
    ctx = Context()
    with pytest.raises(ContextKeyError) as info:
        ctx.update("k", 1)
    assert "'k'" in str(info.value)
    assert "insert" in str(info.value)
    assert "k" not in ctx


def test_set_inserts_or_updates() -> None:
    ctx = Context()
    ctx.set("k", 1)
    assert ctx["k"] == 1
    ctx.set("k", 2)
    assert ctx["k"] == 2
    ctx["j"] = 3
    assert ctx["j"] == 3


def test_remove_returns_the_value_and_deletes_the_key() -> None:
    ctx = Context({"k": [1], "j": 2})
    assert ctx.remove("k") == [1]
    assert "k" not in ctx
    del ctx["j"]
    assert len(ctx) == 0


def test_remove_missing_key_raises() -> None:
    ctx = Context()
    with pytest.raises(ContextKeyError, match="remove"):
        ctx.remove("nope")
    with pytest.raises(KeyError):
        del ctx["nope"]


# -- merging -------------------------------------------------------------------------------


def test_merge_deep_merges_into_the_context() -> None:
    ctx = Context({"cfg": {"a": 1, "inner": {"x": 1}}, "keep": True})
    ctx.merge({"cfg": {"b": 2, "inner": {"y": 2}}, "new": "v"})
    assert ctx.to_dict() == {
        "cfg": {"a": 1, "b": 2, "inner": {"x": 1, "y": 2}},
        "keep": True,
        "new": "v",
    }


def test_deep_merge_objects_merge_recursively() -> None:
    left = {"a": {"b": {"c": 1, "d": 2}, "e": 3}}
    right = {"a": {"b": {"d": 20, "f": 30}}}
    assert deep_merge(left, right) == {"a": {"b": {"c": 1, "d": 20, "f": 30}, "e": 3}}


def test_deep_merge_later_scalar_wins() -> None:
    assert deep_merge({"a": 1}, {"a": 2}) == {"a": 2}
    assert deep_merge({"a": 1}, {"a": 2}, {"a": 3}) == {"a": 3}
    assert deep_merge({"a": 1}, {"a": None}) == {"a": None}


def test_deep_merge_type_conflicts_later_value_replaces() -> None:
    assert deep_merge({"a": {"x": 1}}, {"a": 5}) == {"a": 5}
    assert deep_merge({"a": 5}, {"a": {"x": 1}}) == {"a": {"x": 1}}


def test_deep_merge_lists_are_replaced_not_concatenated() -> None:
    assert deep_merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_deep_merge_does_not_mutate_its_inputs() -> None:
    left = {"a": {"b": {"c": 1}}, "x": [1]}
    right = {"a": {"b": {"d": 2}}, "x": [2]}
    before = copy.deepcopy((left, right))
    deep_merge(left, right)
    assert (left, right) == before


def test_deep_merge_of_nothing_is_empty() -> None:
    assert deep_merge() == {}
    assert deep_merge({}, {}) == {}


# -- serialisation -------------------------------------------------------------------------


def test_dumps_context_is_compact_json() -> None:
    text = dumps_context({"a": 1, "b": [True, None, "é"], "c": {"d": 1.5}})
    assert text == '{"a":1,"b":[true,null,"é"],"c":{"d":1.5}}'
    assert Context({"a": 1}).to_json() == '{"a":1}'


@pytest.mark.parametrize(
    "bad",
    [
        {1, 2},
        datetime(2024, 1, 1),
        object(),
        b"bytes",
        {"nested": {"deeper": {3}}},
    ],
    ids=["set", "datetime", "object", "bytes", "nested-set"],
)
def test_dumps_context_names_the_offending_key(bad: object) -> None:
    data = {"fine": 1, "bad_key": bad, "also_fine": "x"}
    with pytest.raises(ContextSerializationError) as info:
        dumps_context(data)
    err = info.value
    assert err.key == "bad_key"
    assert "'bad_key'" in str(err)
    assert isinstance(err, ContextError)
    assert isinstance(err, TypeError)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"deep": [1, math.nan]}])
def test_dumps_context_rejects_nan_and_infinity(bad: object) -> None:
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"ok": 1, "number": bad})
    assert info.value.key == "number"


def test_context_to_json_names_the_offending_key() -> None:
    ctx = Context()
    ctx.insert("when", datetime(2024, 1, 1))  # insert does not validate; serialising does
    with pytest.raises(ContextSerializationError) as info:
        ctx.to_json()
    assert info.value.key == "when"


def test_dumps_context_circular_value_is_named() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({"loop": loop})
    assert info.value.key == "loop"


def test_dumps_context_rejects_unencodable_keys() -> None:
    with pytest.raises(ContextSerializationError, match="keys must be strings"):
        dumps_context({("a", "b"): 1})  # type: ignore[dict-item]  # the bad key under test


def test_dumps_context_treats_non_string_keys_consistently() -> None:
    with pytest.raises(ContextSerializationError) as info:
        dumps_context({1: "ok", "bad": {1, 2}})  # type: ignore[dict-item]  # int key on purpose
    assert info.value.key == "bad"
    with pytest.raises(ContextSerializationError):
        dumps_context({1: "ok"})  # type: ignore[dict-item]  # the int key under test


def test_loads_context_round_trip_and_empty() -> None:
    data = {"a": [1, 2, {"b": None}], "c": "text", "d": 1.25}
    assert loads_context(dumps_context(data)) == data
    assert loads_context(None) == {}
    assert loads_context("") == {}


def test_loads_context_rejects_non_objects() -> None:
    with pytest.raises(ContextSerializationError):
        loads_context("[1, 2]")
    with pytest.raises(json.JSONDecodeError):
        loads_context("{not json")


def test_as_context_dict_accepts_context_mapping_or_none() -> None:
    assert as_context_dict(None) == {}
    assert as_context_dict(Context({"a": 1})) == {"a": 1}
    assert as_context_dict({"a": 1}) == {"a": 1}
    source = {"a": 1}
    assert as_context_dict(source) is not source
    with pytest.raises(TypeError, match="list"):
        as_context_dict([("a", 1)])  # type: ignore[arg-type]
