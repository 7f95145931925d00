"""In-process adapters: for tests and single-process embedded runs."""
