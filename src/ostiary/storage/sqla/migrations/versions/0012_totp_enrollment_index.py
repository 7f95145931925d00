"""index of pending TOTP enrollments by created_at

Every node deletes authenticator-app set-ups never confirmed within
OSTIARY_MFA_ENROLLMENT_SECONDS (features/retention, kind ``totp_enrollments``). A partial index
holds only the pending rows (a handful: enrollments in progress), so each purge reads those and
not every confirmed factor of the table. Index only: the previous release reads and writes the
table unchanged.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("confirmed_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_totp_factors_pending_created_at",
        "totp_factors",
        ["created_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_totp_factors_pending_created_at", table_name="totp_factors")
