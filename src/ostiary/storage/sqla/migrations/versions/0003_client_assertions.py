"""client assertion replay cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 13:46:25.624365
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ostiary.storage.sqla.tables import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_assertions",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_client_assertions")),
    )
    with op.batch_alter_table("client_assertions", schema=None) as batch_op:
        batch_op.create_index("ix_client_assertions_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("client_assertions", schema=None) as batch_op:
        batch_op.drop_index("ix_client_assertions_expires_at")

    op.drop_table("client_assertions")
