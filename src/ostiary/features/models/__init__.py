"""The model catalog: models as resources with attributes (issue 13, section 1)."""
