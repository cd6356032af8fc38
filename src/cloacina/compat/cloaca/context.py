"""cloaca's ``Context`` on Cloacina's, and the context merge cloaca's engine applies."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import Any

from cloacina.model.context import Context as _Context

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


def to_json_value(value: Any) -> Any:
    """``value`` as cloaca stores it: JSON only (tuples and sets become lists, NaN None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _I64_MIN <= value <= _U64_MAX:
            raise Exception("JSON number out of range")  # cloaca raises a plain Exception
        return value
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dictionary keys must be strings, not {type(key).__name__}")
            out[key] = to_json_value(item)
        return out
    if isinstance(value, bytes | bytearray):
        raise Exception(f"unsupported type {type(value).__name__}")
    raise TypeError(f"unsupported type {type(value).__name__}")


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"context keys must be str, not {type(key).__name__}")
    return key


class Context(_Context):
    """cloaca's context: a string-keyed map of JSON values.

    It is a :class:`cloacina.Context` with cloaca's rules: ``get`` returns a copy,
    ``insert`` raises ``ValueError`` for an existing key, ``update`` ``KeyError`` for a
    missing one, ``remove`` returns ``None`` when absent, and equality is identity.
    """

    __slots__ = ()

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if data is None:
            return
        if not isinstance(data, Mapping):
            raise TypeError(f"Context(data) takes a dict, not {type(data).__name__}")
        for key, value in data.items():
            self._data[_check_key(key)] = to_json_value(value)

    @classmethod
    def _adopt(cls, data: dict[str, Any]) -> Context:
        """A context over ``data`` (already JSON, owned by the new context)."""
        ctx = cls()
        ctx._data = data
        return ctx

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of the value of ``key`` (``default`` when absent; ``None`` for null)."""
        if key not in self._data:
            return default
        return copy.deepcopy(self._data[key])

    def set(self, key: str, value: Any) -> None:
        """Insert or update ``key``."""
        self._data[_check_key(key)] = to_json_value(value)

    __setitem__ = set

    def insert(self, key: str, value: Any) -> None:
        """Add ``key``; ``ValueError`` if it exists."""
        if _check_key(key) in self._data:
            raise ValueError(f"Key already exists: {key}")
        self._data[key] = to_json_value(value)

    def update(self, key: str, value: Any) -> None:
        """Change ``key``; ``KeyError`` if it is absent."""
        if _check_key(key) not in self._data:
            raise KeyError(f"Key not found: {key}")
        self._data[key] = to_json_value(value)

    def remove(self, key: str) -> Any:
        """Remove ``key`` and return its value (``None`` when absent)."""
        return self._data.pop(_check_key(key), None)

    def __getitem__(self, key: str) -> Any:
        value = self._data.get(_check_key(key))
        if value is None:  # cloaca's quirk: a null value reads as absent
            raise KeyError(f"Key not found: {key!r}")
        return copy.deepcopy(value)

    def __delitem__(self, key: str) -> None:
        if _check_key(key) not in self._data:
            raise KeyError(f"Key not found: {key!r}")
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return _check_key(key) in self._data

    def __bool__(self) -> bool:
        return bool(self._data)

    # cloaca compares contexts by identity.
    __eq__ = object.__eq__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """A new plain dict of the data (a deep copy)."""
        return copy.deepcopy(self._data)

    def update_from_dict(self, data: Mapping[str, Any]) -> None:
        """Upsert every item of ``data``."""
        for key, value in data.items():
            self.set(key, value)

    def to_json(self) -> str:
        """The data as a JSON object."""
        return json.dumps(self._data, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Context:
        """A context from a JSON object; ``ValueError`` for anything else."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Failed to deserialize from JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("Failed to deserialize from JSON: expected a JSON object")
        return Context._adopt(data)

    def __repr__(self) -> str:
        return f"Context({self.to_json()})"

    __str__ = __repr__


def smart_merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """cloaca's merge of dependency outputs: lists concatenate without duplicates, objects
    merge recursively, any other value: the latest wins."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for part in parts:
        _merge_into(out, part)
    return out


def _merge_into(target: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if key not in target:
            target[key] = value
            continue
        mine = target[key]
        if isinstance(mine, list) and isinstance(value, list):
            joined = list(mine)
            for item in value:
                if item not in joined:
                    joined.append(item)
            target[key] = joined
        elif isinstance(mine, dict) and isinstance(value, dict):
            merged = dict(mine)
            _merge_into(merged, value)
            target[key] = merged
        else:
            target[key] = value
