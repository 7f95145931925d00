"""sessions.factor_times: when each authentication method of a session was used

Issue 11 (step-up): a session signed in with a password may add a second factor later, and
records the time of each (RFC 8176 method names). The column is nullable: the previous release
writes sessions without it, and a session without times counts every method at its
``auth_time``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("factor_times", sa.JSON(), nullable=True))


def downgrade() -> None:
    # In place (no batch copy): SQLite 3.35+ drops a column without rebuilding the table, so
    # no row of sessions, nor of the tables that cascade from it, is lost.
    op.drop_column("sessions", "factor_times")
