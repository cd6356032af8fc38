"""A JSON value as a collapsible tree for the web UI: objects and lists fold (and show their
first entries only when long), long strings show their start and unfold on a click, and a
value too large to show says so."""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

#: A string longer than this shows its start only until unfolded.
FOLD_CHARS = 120
#: A context larger than this (as JSON) is not shown; the API serves it whole.
MAX_CHARS = 512 * 1024
#: An object or list shows this many entries at most (a mapped task's 100,000 results).
MAX_ITEMS = 200


def render(value: Any) -> Markup:
    """``value`` as nested ``<details>`` (the top level open)."""
    size = len(json.dumps(value, default=str))
    if size > MAX_CHARS:
        return Markup('<p class="hint">{} characters of JSON: too large to show here.</p>').format(
            size
        )
    return Markup('<div class="json">') + _node(value, 0) + Markup("</div>")


def _node(value: Any, depth: int) -> Markup:
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        count = len(value)
        kind = f"{{{count} keys}}" if isinstance(value, dict) else f"[{count} items]"
        rows = Markup("").join(
            Markup('<li><span class="key">{}</span>: {}</li>').format(key, _node(item, depth + 1))
            for _, (key, item) in zip(range(MAX_ITEMS), items, strict=False)
        )
        if count > MAX_ITEMS:
            more = Markup('<li class="hint">… {} more (the API serves the whole value)</li>')
            rows += more.format(f"{count - MAX_ITEMS:,}")
        opened = " open" if depth == 0 else ""
        return Markup("<details{}><summary>{}</summary><ul>{}</ul></details>").format(
            Markup(opened), kind, rows
        )
    text = json.dumps(value, default=str)
    if len(text) <= FOLD_CHARS:
        return Markup("<code>{}</code>").format(text)
    return Markup(
        '<details class="long"><summary><code>{}…</code> ({} chars)</summary>'
        "<pre>{}</pre></details>"
    ).format(text[:FOLD_CHARS], len(text), escape(text))


__all__ = ["render"]
