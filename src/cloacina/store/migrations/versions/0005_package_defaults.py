"""Which version of a package is the default for new runs, when one was promoted.

Without a row here (or with its ``version`` NULL) the highest registered version of a
package is its default; ``cloacina package promote NAME VERSION`` pins one. The choice is
stored so that every runner and worker on the database agrees on it. ``serial`` grows on
every change (rows are never deleted, and each write sets it above the tenant's largest), so
runners notice a promotion with the same cheap check that notices a registration.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "package_defaults",
        sa.Column("tenant", sa.String(64), nullable=False, server_default="public"),
        sa.Column("package", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("promoted_at", sa.Float, nullable=True),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "package", name="pk_package_defaults"),
    )


def downgrade() -> None:
    op.drop_table("package_defaults")
