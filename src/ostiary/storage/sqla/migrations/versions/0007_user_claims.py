"""Standard claims of users, and the ``claims`` request parameter (OpenID Connect Core 1.0)

- ``users.claims``: the section 5.1 standard claims beyond name and e-mail (given_name ...
  phone_number, address), as one JSON object. One column rather than fifteen: the set is
  the spec's and grows with it (``address`` is itself an object, section 5.1.1), no query
  ever filters or sorts on these values, and the whole set is read with the user anyway.
  The values are validated before they are stored (protocol/claims.py).
- ``consents.claims``: claims the user approved one by one through the ``claims`` parameter
  (section 5.5), beyond those of the approved scopes.
- ``authorization_codes.claims_request`` and ``refresh_families.claims_request``: the
  parameter as requested, so that refreshed ID tokens release the same claims.

Backwards-compatible for one release: the new columns have server defaults ('{}', '[]') or
are nullable, so the previous release's code can still insert rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claims", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claims", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claims_request", sa.JSON(), nullable=True))
    with op.batch_alter_table("refresh_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claims_request", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not in batches: on SQLite a batch copies and drops each table, and with foreign keys on
    # dropping ``users`` or ``refresh_families`` cascades to every session, code, consent and
    # refresh token. SQLite 3.35+ drops a column in place.
    op.drop_column("refresh_families", "claims_request")
    op.drop_column("authorization_codes", "claims_request")
    op.drop_column("consents", "claims")
    op.drop_column("users", "claims")
