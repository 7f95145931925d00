"""Per-client signing algorithms, and one chain of signing keys per algorithm

OpenID Connect Dynamic Client Registration 1.0 section 2 (``id_token_signed_response_alg``)
and RFC 9068 / RFC 7591 practice (``access_token_signed_response_alg``): two nullable columns
on ``clients``; NULL means the deployment default (``OSTIARY_ID_TOKEN_SIGNING_ALG``, RS256,
and ``OSTIARY_ACCESS_TOKEN_SIGNING_ALG``, ES256).

Existing clients keep what they receive today. Until now one key ring signed every token with
its latest activated key, whatever its algorithm: ES256 unless an operator had rotated another
algorithm in. Both columns of every existing client are set to the algorithm of the key active
when the migration runs (the latest activated one), so neither their relying parties (which
may accept only that algorithm) nor their resource servers see a change; an operator moves a
client to the new defaults explicitly. A database without keys has issued no token: its
clients keep NULL (the new defaults).

Keys now form one chain per algorithm (protocol/keyring.py): a key stops signing when the next
key *of its algorithm* activates. Under the old single ring, a key stopped when the next key
of *any* algorithm activated. So that no such key signs again (an ES256 key retired by a
switch to RS256 would otherwise become ES256's active key once more), ``signing_keys.retired_
at`` records, for every key whose successor had another algorithm, that successor's
activation: every old key keeps exactly the window it had. Server start then creates a fresh
key for each enabled algorithm without a usable one.

Backwards-compatible for one release: all new columns are nullable, and the previous release
neither reads nor writes them (it keeps its single ring over the same rows; see
``KeyService.ensure_key`` for why a new algorithm's first key does not disturb it). The
downgrade drops the columns; clients then receive the single ring's algorithm again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

import sqlalchemy as sa
from alembic import op

from ostiary.storage.sqla.tables import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_keys = sa.table(
    "signing_keys",
    sa.column("kid", sa.String()),
    sa.column("alg", sa.String()),
    sa.column("activates_at", UtcDateTime()),
    sa.column("retired_at", UtcDateTime()),
)
_clients = sa.table(
    "clients",
    sa.column("id_token_signed_response_alg", sa.String()),
    sa.column("access_token_signed_response_alg", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_token_signed_response_alg", sa.String(16), nullable=True))
        batch_op.add_column(
            sa.Column("access_token_signed_response_alg", sa.String(16), nullable=True)
        )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_at", UtcDateTime(), nullable=True))

    conn = op.get_bind()
    # The old ring's order (protocol/keyring.py before this revision): activation, then kid.
    keys = conn.execute(
        sa.select(_keys.c.kid, _keys.c.alg, _keys.c.activates_at).order_by(
            _keys.c.activates_at, _keys.c.kid
        )
    ).all()
    for key, successor in pairwise(keys):
        if successor.alg != key.alg:
            conn.execute(
                _keys.update()
                .where(_keys.c.kid == key.kid)
                .values(retired_at=successor.activates_at)
            )
    now = datetime.now(UTC)
    active = [k for k in keys if k.activates_at <= now] or keys
    if active:
        alg = active[-1].alg
        conn.execute(
            _clients.update().values(
                id_token_signed_response_alg=alg, access_token_signed_response_alg=alg
            )
        )


def downgrade() -> None:
    # Not in batches: on SQLite a batch copies and drops ``clients``, and with foreign keys on
    # that cascades to every consent, code and refresh family. SQLite 3.35+ drops in place.
    op.drop_column("signing_keys", "retired_at")
    op.drop_column("clients", "access_token_signed_response_alg")
    op.drop_column("clients", "id_token_signed_response_alg")
