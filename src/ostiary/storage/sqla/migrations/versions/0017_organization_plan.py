"""organizations.plan (issue 13, section 2: the organization's plan, a ``User`` attribute in
Cedar decisions, set by the operator)

An added nullable column: the previous release neither reads nor writes it, so both can run
against the upgraded schema during a rolling upgrade.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Not in a batch: on SQLite a batch copies and drops the table, and with foreign keys on
    # the drop would cascade to every row that references it. SQLite 3.35+ drops in place.
    op.drop_column("organizations", "plan")
