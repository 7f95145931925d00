"""Runs one relying-party web app in a process of its own (started by ``tests/e2e/rp_apps.py``).

Usage: ``python rp_process.py django`` with ``DJANGO_SETTINGS_MODULE`` and ``PYTHONPATH``
naming a project written by the test. The port must be known before the OAuth client is
registered (its redirect URI names it), and the client id and secret must be known before the
app is configured, so the process:

1. binds a threaded WSGI server on 127.0.0.1, port 0, and prints ``{"port": N}``;
2. reads one JSON line of environment variables (client id, secret, issuer) from stdin;
3. sets up Django with them, migrates its SQLite database, prints ``{"ready": true}``;
4. serves until it is terminated (SIGTERM's default action ends it).

A process rather than a thread: Django's settings are global to a process, and two Django
relying parties (or the test process itself) must not share them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _LateApp:
    """The WSGI app, known only after the port has been printed and the config read."""

    app: WsgiApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "request before the app was configured"
        return self.app(environ, start_response)


def _django_app() -> WsgiApp:
    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    app: WsgiApp = get_wsgi_application()
    return app


def main() -> None:
    kind = sys.argv[1]
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    print(json.dumps({"port": server.server_port}), flush=True)
    os.environ.update(json.loads(sys.stdin.readline()))
    if kind != "django":
        raise SystemExit(f"unknown app kind {kind!r}")
    late.app = _django_app()
    print(json.dumps({"ready": True}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
