"""The context: the JSON data a workflow run passes from task to task."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from cloacina.errors import (
    ContextError,
    ContextKeyError,
    ContextSerializationError,
    ContextTooDeepError,
)

_MISSING: Any = object()

#: How many levels of objects and arrays a context may nest, the context itself being level 1
#: (``{"a": [1]}`` has 2). JSON parsers and encoders recurse, so much deeper data would end
#: in a ``RecursionError``; 100 levels is far more than real data needs.
MAX_DEPTH = 100
_CONTAINERS = (dict, list, tuple)


class Context:
    """Dict-like holder of JSON-serialisable values, shared along a workflow's edges.

    ``insert`` adds a new key (error if it exists), ``update`` changes an existing one (error if
    it does not), ``set`` does either. A task receives the merged outputs of its dependencies
    and its whole context after it ran is its output.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data) if data is not None else {}

    # -- reading -----------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when absent."""
        return self._data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise ContextKeyError(
                f"context has no key {key!r} (keys: {sorted(self._data)}); "
                "use context.get(key, default) when a key may be absent"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._data)

    def items(self) -> list[tuple[str, Any]]:
        """``(key, value)`` pairs, in insertion order."""
        return list(self._data.items())

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the data as a plain dict."""
        return dict(self._data)

    # -- writing -----------------------------------------------------------------------------
    def insert(self, key: str, value: Any) -> None:
        """Add ``key``; a :class:`ContextKeyError` if it already exists (use ``set``/``update``)."""
        if key in self._data:
            raise ContextKeyError(
                f"context key {key!r} already exists; use context.update() to change it "
                "or context.set() to insert-or-update"
            )
        self._data[key] = value

    def update(self, key: str, value: Any) -> None:
        """Change an existing ``key``; a :class:`ContextKeyError` if it is absent."""
        if key not in self._data:
            raise ContextKeyError(
                f"context has no key {key!r} to update; use context.insert() to add it "
                "or context.set() to insert-or-update"
            )
        self._data[key] = value

    def set(self, key: str, value: Any) -> None:
        """Insert or update ``key``."""
        self._data[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def remove(self, key: str) -> Any:
        """Delete ``key`` and return its value; a :class:`ContextKeyError` if it is absent."""
        try:
            return self._data.pop(key)
        except KeyError:
            raise ContextKeyError(f"context has no key {key!r} to remove") from None

    def __delitem__(self, key: str) -> None:
        self.remove(key)

    def merge(self, other: Mapping[str, Any]) -> None:
        """Deep-merge ``other`` into this context (objects merge, a later scalar wins)."""
        deep_merge_into(self._data, other)

    # -- misc --------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Context):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Context({self._data!r})"

    def to_json(self) -> str:
        """The data as compact JSON; :class:`ContextSerializationError` names a bad key."""
        return dumps_context(self._data)


def deep_merge_into(target: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``other`` into ``target`` in place: nested dicts merge, anything else overwrites."""
    for key, value in other.items():
        mine = target.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(mine, dict):
            target[key] = deep_merge_into(dict(mine), value)
        else:
            target[key] = value
    return target


def deep_merge(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: the deep merge of ``parts`` from left to right (later scalars win)."""
    out: dict[str, Any] = {}
    for part in parts:
        deep_merge_into(out, part)
    return out


_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
# For text a database cannot store as UTF-8 (lone surrogates): escaped, it round-trips.
_ascii_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=True)


def dumps_context(data: Mapping[str, Any]) -> str:
    """Serialise context data to compact JSON, naming the first key that cannot be stored.

    Keys must be strings at every depth (JSON would silently turn ``1`` into ``"1"``) and
    data may nest at most :data:`MAX_DEPTH` levels.
    """
    try:
        text = _encoder.encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        if not isinstance(data, Mapping):
            raise ContextSerializationError("<context>", "not a mapping") from exc
        for key, value in data.items():
            try:
                _encoder.encode(value)
            except (TypeError, ValueError, RecursionError) as inner:
                check_context_data({key: value})  # a bad key, nesting or cycle, with its path
                if isinstance(inner, RecursionError):  # pragma: no cover - found by the walk
                    raise ContextTooDeepError(str(key), _path([key]), MAX_DEPTH) from None
                raise ContextSerializationError(str(key), str(inner)) from inner
        check_context_data(data)
        raise ContextSerializationError("<context>", str(exc)) from exc
    check_context_data(data, acyclic=True)  # the encoder refuses cycles
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _ascii_encoder.encode(data)
    return text


def check_context_data(data: Mapping[Any, Any], *, acyclic: bool = False) -> None:
    """Refuse keys that are not strings (at any depth), nesting deeper than
    :data:`MAX_DEPTH` and values that contain themselves, naming where. Values JSON cannot
    store are left to the encoder. The walk uses no recursion: it is safe on any data.

    ``acyclic=True`` skips the search for cycles (faster), for data the JSON encoder took.
    """
    if len(data) > _FEW and _flat(data):  # string keys, scalar values: nothing to walk
        return
    # Entries: (container, its depth, its path as (parent path, step) links), or a marker
    # (None, 0, container) that takes a container off the current branch once it is done.
    stack: list[tuple[Any, int, Any]] = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise _key_error([], key)
        if isinstance(value, _CONTAINERS):
            stack.append((value, 2, (None, key)))
    branch: set[int] = set()  # the containers between the top and the current one
    while stack:
        node, depth, path = stack.pop()
        if node is None:
            branch.discard(id(path))
            continue
        if depth > MAX_DEPTH:
            steps = _steps(path)
            raise ContextTooDeepError(str(steps[0]), _path(steps), MAX_DEPTH)
        if not acyclic:
            if id(node) in branch:
                steps = _steps(path)
                raise ContextSerializationError(
                    str(steps[0]), f"the value at {_path(steps)} contains itself"
                )
            branch.add(id(node))
            stack.append((None, 0, node))
        depth += 1
        if isinstance(node, dict):
            if len(node) > _FEW and _flat(node):
                continue
            for key, value in node.items():
                if not isinstance(key, str):
                    raise _key_error(_steps(path), key)
                if isinstance(value, _CONTAINERS):
                    stack.append((value, depth, (path, key)))
        else:
            if len(node) > _FEW and set(map(type, node)) <= _SCALARS:
                continue
            for index, value in enumerate(node):
                if isinstance(value, _CONTAINERS):
                    stack.append((value, depth, (path, index)))


#: Exact types of values with nothing inside to check (subclasses take the walk).
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
#: Below this many entries, looking at each one is cheaper than building the type sets.
_FEW = 8


def _flat(mapping: Mapping[Any, Any]) -> bool:
    """Whether a mapping has only ``str`` keys and scalar values: judged with C-level set
    operations, far cheaper than looking at each entry in Python."""
    return set(map(type, mapping)) <= _STR and set(map(type, mapping.values())) <= _SCALARS


def _steps(path: Any) -> list[Any]:
    steps = []
    while path is not None:
        path, step = path
        steps.append(step)
    return steps[::-1]


def _path(steps: list[Any]) -> str:
    """``context['a'][0]['b']``; a long path keeps its first and last steps."""
    parts = [f"[{s!r}]" for s in steps]
    if len(parts) > 10:
        parts = [*parts[:4], f"...({len(parts) - 7} more)...", *parts[-3:]]
    return "context" + "".join(parts)


def _key_error(steps: list[Any], key: Any) -> ContextSerializationError:
    """The error for ``key`` (not a string) in the object at ``steps``."""
    return ContextSerializationError(
        str(steps[0]) if steps else repr(key),
        f"the key {key!r} at {_path([*steps, key])} is of type {type(key).__name__}; keys "
        "must be strings at every depth",
    )


def parse_context_json(text: str) -> dict[str, Any]:
    """Parse JSON text given as a context (a file, a command line), with the rules
    :func:`dumps_context` applies: a :class:`ContextTooDeepError` for data nested too deeply,
    ``ValueError`` (``json.JSONDecodeError``) for text that is not JSON, and a
    :class:`ContextError` for JSON that is not an object."""
    try:
        value = json.loads(text)
    except RecursionError:  # the decoder recurses: much deeper than MAX_DEPTH
        raise ContextTooDeepError("<context>", "", MAX_DEPTH) from None
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise ContextError(f'a context must be a JSON object like {{"key": "value"}}, not a {kind}')
    check_context_data(value)
    return value


def loads_context(text: str | None) -> dict[str, Any]:
    """Parse stored context JSON (``None`` or empty gives an empty dict)."""
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ContextSerializationError("<context>", "stored context is not a JSON object")
    return value


def as_context_dict(context: Context | Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept a :class:`Context`, a plain mapping or ``None`` and return a plain dict."""
    if context is None:
        return {}
    if isinstance(context, Context):
        return context.to_dict()
    if isinstance(context, Mapping):
        return dict(context)
    raise TypeError(
        f"a workflow context must be a cloacina.Context or a dict, not {type(context).__name__}"
    )
