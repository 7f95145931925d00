"""clients.introspection_audiences: the audiences a client may introspect tokens of

RFC 7662 section 4: introspection answers only resource servers registered for the token's
audience (and a client about its own tokens). Existing clients get none (an empty list, also
the server default, so that the previous release's code can still insert clients).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "introspection_audiences",
                sa.JSON(),
                nullable=False,
                server_default=sa.text("'[]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("introspection_audiences")
