"""clients.pkce; authorization codes without PKCE; whether redirect_uri was sent

- ``clients.pkce`` (required | nonce | optional): when a confidential client may go without
  PKCE (RFC 9700 section 2.1.1). Existing clients keep ``required``, also the server default,
  so that nothing changes on upgrade and the previous release can still insert clients.
- ``authorization_codes.code_challenge`` becomes nullable: a code issued without PKCE.
- ``authorization_codes.redirect_uri_sent``: RFC 6749 section 4.1.3 requires ``redirect_uri``
  at the token endpoint only if the authorization request had it. The default (false) is the
  previous release's behaviour: it may be omitted.

Downgrade: codes without a challenge get an empty one, which no verifier matches (they live
60 seconds; the previous release would refuse them anyway, and their replay records stay).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pkce", sa.String(length=16), nullable=False, server_default=sa.text("'required'")
            )
        )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.alter_column("code_challenge", existing_type=sa.String(length=128), nullable=True)
        batch_op.add_column(
            sa.Column("redirect_uri_sent", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    op.execute("UPDATE authorization_codes SET code_challenge = '' WHERE code_challenge IS NULL")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("redirect_uri_sent")
        batch_op.alter_column("code_challenge", existing_type=sa.String(length=128), nullable=False)
    # Not in a batch: on SQLite that copies and drops ``clients``, and with foreign keys on the
    # drop cascades to every consent, code and refresh family. SQLite 3.35+ drops a column
    # in place.
    op.drop_column("clients", "pkce")
