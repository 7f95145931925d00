"""org_invitations, org_preferences, organizations.require_acr, clients.org_scoped,
authorization_codes.org_id, refresh_families.org_id
(issue 12, section 1: invitations by e-mail, the active organization, org-scoped clients, an
organization's required acr)

Expand only: new tables, and nullable or defaulted columns the previous release ignores.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ostiary.storage.sqla.tables import UtcDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "org_invitations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("inviter_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mail_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("accepted_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_org_invitations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_org_invitations_token_hash")),
    )
    op.create_index(
        "ix_org_invitations_organization_id_email",
        "org_invitations",
        ["organization_id", "email"],
    )
    op.create_index("ix_org_invitations_expires_at", "org_invitations", ["expires_at"])
    op.create_table(
        "org_preferences",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_org_preferences_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_org_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_org_preferences")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_acr", sa.String(length=64), nullable=True))
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("org_scoped", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for table in ("authorization_codes", "refresh_families"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("org_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    # Not in a batch: on SQLite a batch copies and drops the table, and with foreign keys on
    # the drop would cascade to every row that references it. SQLite 3.35+ drops in place.
    op.drop_column("refresh_families", "org_id")
    op.drop_column("authorization_codes", "org_id")
    op.drop_column("clients", "org_scoped")
    op.drop_column("organizations", "require_acr")
    op.drop_table("org_preferences")
    op.drop_table("org_invitations")
