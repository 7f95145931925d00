"""Service accounts and API keys (issue 12, section 3)."""
