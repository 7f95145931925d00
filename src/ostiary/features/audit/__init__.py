"""Tamper-evident audit trail: who did what, when, from where, with which outcome."""
