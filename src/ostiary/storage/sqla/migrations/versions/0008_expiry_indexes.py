"""indexes on expires_at of authorization_codes, refresh_families and sessions

Every node deletes expired rows in batches (features/retention, OSTIARY_PURGE_INTERVAL_SECONDS);
without these indexes each batch would scan its whole table. revocations and
client_assertions have theirs since 0002 / 0003. Indexes only: the previous release reads and
writes these tables unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("authorization_codes", "ix_authorization_codes_expires_at"),
    ("refresh_families", "ix_refresh_families_expires_at"),
    ("sessions", "ix_sessions_expires_at"),
)


def upgrade() -> None:
    for table, name in _INDEXES:
        op.create_index(name, table, ["expires_at"])


def downgrade() -> None:
    for table, name in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
