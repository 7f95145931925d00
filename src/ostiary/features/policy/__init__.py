"""Cedar policies per organization and the AuthZEN decision point (issue 13, sections 2-3)."""
