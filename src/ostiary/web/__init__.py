"""HTTP surface: FastAPI app, routes, templates. No business rules live here."""
