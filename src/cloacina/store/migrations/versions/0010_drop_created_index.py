"""Drop ``ix_workflow_executions_created``: ``ix_workflow_executions_page`` (0009) on
``(created_at, id)`` serves every query it served, and with both PostgreSQL read the first
page of the execution list from the narrower one and sorted each page again by id (an
incremental sort). One index fewer is also one less to update for every run submitted.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_workflow_executions_created", "workflow_executions")


def downgrade() -> None:
    op.create_index("ix_workflow_executions_created", "workflow_executions", ["created_at"])
