"""Server-Sent Events read from lines (the WHATWG format the server's event stream uses)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One event of a stream: its ``id`` (the execution event's sequence number), ``event``
    (its type) and ``data`` (the text of its data lines, joined by newlines)."""

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        """``data`` parsed as JSON (``None`` when empty)."""
        return json.loads(self.data) if self.data else None


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of a stream, given its lines (without their line ends). Comments
    (``: keep-alive``) and events without data are skipped, as the format says."""
    event_id: str | None = None
    event = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event_id, event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            # The last event id persists across events until a new one is given.
            event_id = value
    # An event cut off before its blank line is dropped, as the format says: its data may
    # be incomplete.
