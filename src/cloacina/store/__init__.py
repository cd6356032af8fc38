"""The store: the only package that talks SQL. ``open_store(url)`` picks the backend."""

from __future__ import annotations

from cloacina.errors import StoreError
from cloacina.store.base import Store, WriteTx


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
