"""Registry queries: packages and the workflows they hold (SQLAlchemy Core; backend-neutral).

Not on the hot path, so these use plain SQLAlchemy Core statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloacina.store.records import PackageRow
from cloacina.store.tables import (
    package_defaults,
    package_workflows,
    workflow_executions,
    workflow_packages,
)

#: What :meth:`PackageQueries.packages_state` returns: how many packages, the newest
#: registration time, and the largest ``package_defaults.serial`` (a promotion changed).
PackagesState = tuple[int, float, int]

#: :meth:`PackageQueries.packages_state` as one statement with ``?`` placeholders (the tenant,
#: three times), for a store that runs it on a fast path of its own (PostgreSQL, every poll).
PACKAGES_STATE_SQL = (
    "SELECT (SELECT count(id) FROM workflow_packages WHERE tenant = ?),"
    " (SELECT max(created_at) FROM workflow_packages WHERE tenant = ?),"
    " (SELECT max(serial) FROM package_defaults WHERE tenant = ?)"
)


def packages_state_of(row: Sequence[Any]) -> PackagesState:
    """The :data:`PackagesState` of a row of :data:`PACKAGES_STATE_SQL` (NULLs as zeros)."""
    count, newest, serial = row
    return int(count or 0), float(newest or 0.0), int(serial or 0)


def _next_serial(tenant: str) -> Any:
    """A subquery one above the tenant's largest serial: every write moves the maximum up, and
    as rows are never deleted it never comes down, so a changed maximum means a change."""
    return (
        select(func.coalesce(func.max(package_defaults.c.serial), 0) + 1)
        .where(package_defaults.c.tenant == tenant)
        .scalar_subquery()
    )


_ROW_COLUMNS = (
    workflow_packages.c.id,
    workflow_packages.c.tenant,
    workflow_packages.c.package,
    workflow_packages.c.version,
    workflow_packages.c.sha256,
    workflow_packages.c.fingerprint,
    workflow_packages.c.metadata,
    workflow_packages.c.manifest,
    workflow_packages.c.signer,
    workflow_packages.c.created_at,
)


class PackageQueries:
    """The registry's queries, given a SQLAlchemy engine."""

    engine: Engine

    def insert_package(
        self,
        row: PackageRow,
        archive: bytes,
        signature: bytes | None,
        workflows: Sequence[tuple[str, str]],
    ) -> bool:
        """Store a package and its ``(workflow name, version)`` list; False if a package with
        the same bytes or the same name and version already exists."""
        values: dict[str, Any] = {c.name: getattr(row, c.name) for c in _ROW_COLUMNS}
        values.update(archive=archive, signature=signature)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(workflow_packages).values(**values))
                if workflows:
                    conn.execute(
                        insert(package_workflows),
                        [
                            {"package_id": row.id, "workflow_name": n, "workflow_version": v}
                            for n, v in workflows
                        ],
                    )
        except IntegrityError:
            return False
        return True

    def find_package(
        self,
        tenant: str,
        *,
        sha256: str | None = None,
        name: str | None = None,
        version: str | None = None,
        package_id: str | None = None,
    ) -> PackageRow | None:
        query = select(*_ROW_COLUMNS).where(workflow_packages.c.tenant == tenant)
        if sha256 is not None:
            query = query.where(workflow_packages.c.sha256 == sha256)
        if name is not None:
            query = query.where(workflow_packages.c.package == name)
        if version is not None:
            query = query.where(workflow_packages.c.version == version)
        if package_id is not None:
            query = query.where(workflow_packages.c.id == package_id)
        with self.engine.connect() as conn:
            found = conn.execute(query.limit(1)).first()
        return PackageRow(**found._mapping) if found else None

    def list_packages(self, tenant: str) -> list[PackageRow]:
        """Every package of the tenant, oldest first."""
        query = (
            select(*_ROW_COLUMNS)
            .where(workflow_packages.c.tenant == tenant)
            .order_by(workflow_packages.c.created_at, workflow_packages.c.id)
        )
        with self.engine.connect() as conn:
            return [PackageRow(**r._mapping) for r in conn.execute(query)]

    def packages_state(self, tenant: str) -> PackagesState:
        """A cheap change detector: how many packages, the newest registration time, and the
        serial of the latest promotion (see :data:`PackagesState`)."""
        count = select(func.count(workflow_packages.c.id)).where(
            workflow_packages.c.tenant == tenant
        )
        newest = select(func.max(workflow_packages.c.created_at)).where(
            workflow_packages.c.tenant == tenant
        )
        serial = select(func.max(package_defaults.c.serial)).where(
            package_defaults.c.tenant == tenant
        )
        query = select(count.scalar_subquery(), newest.scalar_subquery(), serial.scalar_subquery())
        with self.engine.connect() as conn:
            return packages_state_of(tuple(conn.execute(query).one()))

    def promoted_versions(self, tenant: str) -> dict[str, str]:
        """``{package: version}`` for every package with a promoted default version."""
        query = select(package_defaults.c.package, package_defaults.c.version).where(
            package_defaults.c.tenant == tenant, package_defaults.c.version.is_not(None)
        )
        with self.engine.connect() as conn:
            return {str(p): str(v) for p, v in conn.execute(query)}

    def set_promoted_version(
        self, tenant: str, package: str, version: str | None, now: float
    ) -> None:
        """Make ``version`` the default of ``package`` (None: back to the highest version)."""
        values = {
            "version": version,
            "promoted_at": now if version is not None else None,
            "serial": _next_serial(tenant),
        }
        for _ in range(2):  # a concurrent first promotion may insert the row first
            try:
                with self.engine.begin() as conn:
                    done = conn.execute(
                        update(package_defaults)
                        .where(
                            package_defaults.c.tenant == tenant,
                            package_defaults.c.package == package,
                        )
                        .values(**values)
                    )
                    if not done.rowcount:
                        conn.execute(
                            insert(package_defaults).values(
                                tenant=tenant, package=package, **values
                            )
                        )
                return
            except IntegrityError:
                continue
        raise AssertionError("unreachable: the row exists after a failed insert")

    def get_package_archive(self, package_id: str) -> tuple[bytes, bytes | None] | None:
        query = select(workflow_packages.c.archive, workflow_packages.c.signature).where(
            workflow_packages.c.id == package_id
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).first()
        return (bytes(found[0]), bytes(found[1]) if found[1] else None) if found else None

    def count_unfinished_runs(self, package_id: str) -> int:
        query = select(func.count(workflow_executions.c.id)).where(
            workflow_executions.c.package_id == package_id,
            workflow_executions.c.status.in_(("running", "paused")),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def delete_package(self, package_id: str) -> bool:
        """Remove a package; a promotion of it is cleared in the same transaction (its
        package's highest remaining version becomes the default)."""
        with self.engine.begin() as conn:
            found = conn.execute(
                select(
                    workflow_packages.c.tenant,
                    workflow_packages.c.package,
                    workflow_packages.c.version,
                ).where(workflow_packages.c.id == package_id)
            ).first()
            if found is not None:
                _clear_promotion(conn, *found)
            conn.execute(
                delete(package_workflows).where(package_workflows.c.package_id == package_id)
            )
            result = conn.execute(
                delete(workflow_packages).where(workflow_packages.c.id == package_id)
            )
        return bool(result.rowcount)


def _clear_promotion(conn: Connection, tenant: str, package: str, version: str) -> None:
    conn.execute(
        update(package_defaults)
        .where(
            package_defaults.c.tenant == tenant,
            package_defaults.c.package == package,
            package_defaults.c.version == version,
        )
        .values(version=None, promoted_at=None, serial=_next_serial(tenant))
    )
