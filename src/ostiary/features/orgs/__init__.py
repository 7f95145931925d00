"""Organizations, projects and memberships (issue 12)."""
