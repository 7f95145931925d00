"""Roles, groups, role assignments and effective permissions (issue 12, section 2)."""
