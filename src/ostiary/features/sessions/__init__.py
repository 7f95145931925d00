"""Browser sessions: server-side, listed and revoked by their owner, ended on every node at once."""
