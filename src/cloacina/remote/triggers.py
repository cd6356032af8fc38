"""The trigger methods of :class:`cloacina.Client` (``/api/v1/triggers``): the same names,
arguments and return types as ``DefaultRunner``'s (see :mod:`cloacina.service.triggers`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from cloacina.service.triggers import TriggerInfo


def _path(name: str, action: str = "") -> str:
    return f"/api/v1/triggers/{quote(str(name), safe='')}{action}"


class TriggerClient:
    """A mixin of :class:`cloacina.Client` (it provides ``_json``)."""

    _json: Callable[..., Any]

    def list_triggers(self) -> list[TriggerInfo]:
        """Every trigger recorded in the server's database, by name."""
        doc = self._json("GET", "/api/v1/triggers")
        items = doc.get("items") if isinstance(doc, dict) else doc
        return [TriggerInfo.from_dict(item) for item in (items or [])]

    def get_trigger(self, name: str) -> TriggerInfo:
        """One trigger (:class:`~cloacina.errors.NotFoundError` naming the nearest one)."""
        return TriggerInfo.from_dict(self._json("GET", _path(name)))

    def pause_trigger(self, name: str) -> None:
        """Stop polling trigger ``name`` on every worker until resumed."""
        self._json("POST", _path(name, "/pause"))

    def resume_trigger(self, name: str) -> None:
        """Poll trigger ``name`` again, at once, its failures forgotten."""
        self._json("POST", _path(name, "/resume"))
