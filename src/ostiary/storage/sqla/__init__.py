"""SQLAlchemy 2 async adapters. Repositories flush; the caller commits."""
