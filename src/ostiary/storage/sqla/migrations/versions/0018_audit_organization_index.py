"""index of audit events by organization and sequence

An organization's administrators read their slice of the trail newest first
(GET /api/v1/orgs/{org}/audit-events, ``ostiary audit list --org``): ``WHERE organization_id =
? ORDER BY seq DESC LIMIT n`` walks this index backwards instead of the whole table. Index only:
the previous release reads and writes the table unchanged. On PostgreSQL it is built
``CONCURRENTLY`` (outside the migration's transaction), so appending events, which every
audited request does, is not blocked while a large trail is indexed during a rolling upgrade.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 22:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_audit_events_organization_seq"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                _NAME,
                "audit_events",
                ["organization_id", "seq"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(_NAME, "audit_events", ["organization_id", "seq"])


def downgrade() -> None:
    op.drop_index(_NAME, table_name="audit_events")
