"""The store: the only package that talks SQL. ``open_store(url)`` picks the backend.

Importing ``cloacina.store.records`` must not pull in SQLAlchemy (a package's worker process
uses the records only), so the store classes are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloacina.errors import StoreError

if TYPE_CHECKING:
    from cloacina.store.base import Store, WriteTx


def __getattr__(name: str) -> Any:
    if name in ("Store", "WriteTx"):
        from cloacina.store import base

        return getattr(base, name)
    raise AttributeError(f"module 'cloacina.store' has no attribute {name!r}")


def normalize_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs, the seed's ``sqlite://path`` and bare ``*.db`` paths."""
    if "://" not in url and not url.startswith("sqlite:"):
        return f"sqlite:///{url}"
    return url


def open_store(url: str, **settings: float) -> Store:
    """Open (creating and migrating when needed) the database at ``url``."""
    url = normalize_url(url)
    if url.startswith("sqlite:"):
        from cloacina.store.sqlite import SQLiteStore

        return SQLiteStore(url, **settings)
    if url.startswith(("postgresql", "postgres")):
        raise StoreError(
            f"PostgreSQL support is not available in this version yet (url {url!r}); "
            "use a sqlite:/// URL"
        )
    raise StoreError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db "
        "(or postgresql://user@host/db)"
    )


__all__ = ["Store", "StoreError", "WriteTx", "normalize_url", "open_store"]
