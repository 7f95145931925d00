"""Retention: records past their usefulness are deleted, so the tables stay as large as the
live state (revocations, authorization codes, refresh-token families, sessions, client-assertion
ids)."""
