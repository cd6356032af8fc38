"""API key queries (SQLAlchemy Core; backend-neutral). Keys live in the default tenant's
database. Only a key's SHA-256 is stored, never the key itself."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, insert, or_, select, update

from cloacina.store.tables import api_keys


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """One row of ``api_keys``."""

    id: str
    name: str
    role: str
    tenant: str | None
    prefix: str
    key_hash: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


_COLUMNS = tuple(api_keys.c[name] for name in ApiKeyRow.__dataclass_fields__)


class KeyQueries:
    """The ``api_keys`` table, given a SQLAlchemy engine."""

    engine: Engine

    def insert_api_key(self, row: ApiKeyRow) -> None:
        values = {c.name: getattr(row, c.name) for c in _COLUMNS}
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(**values))

    def find_api_key(
        self, *, key_id: str | None = None, key_hash: str | None = None
    ) -> ApiKeyRow | None:
        """The key with this id or this hash (the hash is unique and indexed)."""
        query = select(*_COLUMNS)
        if key_id is not None:
            query = query.where(api_keys.c.id == key_id)
        if key_hash is not None:
            query = query.where(api_keys.c.key_hash == key_hash)
        with self.engine.connect() as conn:
            found = conn.execute(query.limit(1)).first()
        return ApiKeyRow(**found._mapping) if found else None

    def list_api_keys(self) -> list[ApiKeyRow]:
        """Every key (revoked and expired ones too), oldest first."""
        query = select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id)
        with self.engine.connect() as conn:
            return [ApiKeyRow(**r._mapping) for r in conn.execute(query)]

    def count_active_api_keys(self, now: float) -> int:
        """Keys neither revoked nor expired at ``now``."""
        query = select(func.count(api_keys.c.id)).where(
            api_keys.c.revoked_at.is_(None),
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def revoke_api_key(self, key_id: str, now: float) -> bool:
        """Mark a key revoked (a key revoked already keeps its first time); False if there
        is no such key."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            found = conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
        return found is not None

    def touch_api_key(self, key_id: str, now: float, every: float) -> None:
        """Set ``last_used_at`` to ``now`` unless it was set less than ``every`` seconds
        ago (so that many servers using one key write it seldom)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(
                    and_(
                        api_keys.c.id == key_id,
                        or_(
                            api_keys.c.last_used_at.is_(None),
                            api_keys.c.last_used_at <= now - every,
                        ),
                    )
                )
                .values(last_used_at=now)
            )
