"""``python -m cloacina``: the command line."""

from __future__ import annotations

from cloacina.cli import main

if __name__ == "__main__":
    main()
