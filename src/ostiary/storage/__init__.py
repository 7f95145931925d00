"""Adapters implementing the features' ports: ``sqla`` ``redis``, ``memory``."""
