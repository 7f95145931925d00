"""Invitations by e-mail to join an organization (issue 12, section 1)."""
