"""Workflow packages: the registry of .cloacina archives, and runs pinned to a package.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_packages",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="public"),
        sa.Column("package", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("archive", sa.LargeBinary, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=True),
        sa.Column("signer", sa.String(80), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant", "sha256", name="uq_workflow_packages_sha"),
        sa.UniqueConstraint("tenant", "package", "version", name="uq_workflow_packages_version"),
    )
    op.create_table(
        "package_workflows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "package_id",
            sa.String(36),
            sa.ForeignKey("workflow_packages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_version", sa.String(64), nullable=False),
    )
    op.create_index("ix_package_workflows_name", "package_workflows", ["workflow_name"])
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("package_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("package_id")
    op.drop_table("package_workflows")
    op.drop_table("workflow_packages")
