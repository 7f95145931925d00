"""Routers, one module per surface."""
