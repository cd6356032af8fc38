"""Compatibility layers: other engines' Python APIs translated onto Cloacina's own.

``cloacina.compat.cloaca`` is a drop-in for code written against ``cloaca``, the Python
bindings of the Rust Cloacina engine: ``import cloacina.compat.cloaca as cloaca``.
"""

from __future__ import annotations
