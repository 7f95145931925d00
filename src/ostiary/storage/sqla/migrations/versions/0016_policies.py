"""model_catalog, policy_versions, decision_log (issue 13: model catalog, Cedar policies and
the AuthZEN decision API)

New tables only: the previous release neither reads nor writes them. ``organization_id`` is ""
for deployment-wide catalog entries and policies (ARCHITECTURE.md, "Tenancy model").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ostiary.storage.sqla.tables import UtcDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_catalog",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "model_id", name=op.f("pk_model_catalog")),
    )
    op.create_table(
        "policy_versions",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policies", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=36), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "version", name=op.f("pk_policy_versions")),
    )
    op.create_table(
        "decision_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("decision", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_log")),
    )
    op.create_index("ix_decision_log_organization_id_id", "decision_log", ["organization_id", "id"])
    op.create_index("ix_decision_log_expires_at", "decision_log", ["expires_at"])


def downgrade() -> None:
    for table in ("decision_log", "policy_versions", "model_catalog"):
        op.drop_table(table)
