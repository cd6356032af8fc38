"""Registry queries: packages and the workflows they hold (SQLAlchemy Core; backend-neutral).

Not on the hot path, so these use plain SQLAlchemy Core statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from cloacina.store.records import PackageRow
from cloacina.store.tables import package_workflows, workflow_executions, workflow_packages

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

    def packages_state(self, tenant: str) -> tuple[int, float]:
        """A cheap change detector: how many packages, and the newest registration time."""
        query = select(
            func.count(workflow_packages.c.id), func.max(workflow_packages.c.created_at)
        ).where(workflow_packages.c.tenant == tenant)
        with self.engine.connect() as conn:
            count, newest = conn.execute(query).one()
        return int(count), float(newest or 0.0)

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
        with self.engine.begin() as conn:
            conn.execute(
                delete(package_workflows).where(package_workflows.c.package_id == package_id)
            )
            result = conn.execute(
                delete(workflow_packages).where(workflow_packages.c.id == package_id)
            )
        return bool(result.rowcount)
