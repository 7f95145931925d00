"""Ostiary: an identity and access platform for AI products.

The public entry points are the ``ostiary`` command (:mod:`ostiary.cli`) and
:func:`ostiary.web.app.create_app` for embedding the server in another ASGI stack.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
