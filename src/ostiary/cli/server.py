"""Run the server: ``dev`` (SQLite, a dev admin and a demo client), ``serve`` (production)
and ``migrate`` (the schema).

``serve --workers N`` runs N processes behind one listening socket, bound by a supervisor
(uvicorn's): the kernel hands each new connection to one worker; the supervisor replaces a
worker that dies or stops answering its health check, rolls every worker over on SIGHUP (each
new one serves before an old one stops: a restart without refusing a connection), and on
SIGTERM lets each worker finish its requests (``OSTIARY_SHUTDOWN_GRACE_SECONDS``). Workers share
nothing in memory: sessions, revocations and caches already go through the database or Redis
as between replicas, and their Prometheus metrics are merged through files
(web/middleware.py). The one exception is the sign-in throttle, which without Redis lives in
a worker's memory, so N workers would allow N times the attempts: more than one worker needs
``OSTIARY_REDIS_URL``.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ostiary import __version__
from ostiary.cli._common import JsonOpt, fail, load, print_json, run, write_private
from ostiary.config import SECRET_KEY_FILE, ConfigError, Settings
from ostiary.protocol.destinations import is_loopback_host

__all__ = ["dev", "migrate", "purge", "serve"]

DEV_ADMIN_EMAIL = "admin@ostiary.dev"
DEV_ADMIN_FILE = "dev-admin.json"
WORKER_HEALTH_TIMEOUT_SECONDS = 30


def _uvicorn_config(settings: Settings, app: Any, host: str, port: int, **more: Any) -> Any:
    import uvicorn

    from ostiary.web.http_protocol import CoalescingHttpProtocol

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with each response's head and body in one write (web/http_protocol.py).
        http=CoalescingHttpProtocol,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # Only these peers' X-Forwarded-For / -Proto count (client_ip, throttle buckets).
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        # SIGTERM: stop accepting, let in-flight requests finish (bounded), then exit.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        **more,
    )


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from ostiary.web.app import create_app
    from ostiary.web.logs import configure_logging, stop_logging

    configure_logging(settings.log_level, settings.log_json)
    config = _uvicorn_config(settings, create_app(settings), host, port)
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal (exit 143);
    # an orderly shutdown should exit 0 so process supervisors do not report a crash.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        uvicorn.Server(config).run()
    finally:
        stop_logging()  # the log writer's queued lines (the last requests, "stopped") go out


def dev(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir_option: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the database and secret key live "
            "(default OSTIARY_DATA_DIR, else ./ostiary-data).",
        ),
    ] = None,
) -> None:
    """Start a development server on SQLite, with a dev admin user (created on first run)."""
    # http://localhost, not the loopback address it binds: browsers treat localhost as a
    # secure context, and WebAuthn refuses IP addresses, so passkeys work in dev out of the box.
    public_host = "localhost" if is_loopback_host(host) else host
    issuer = os.environ.get("OSTIARY_ISSUER") or f"http://{public_host}:{port}"
    overrides: dict[str, Any] = {} if data_dir_option is None else {"data_dir": data_dir_option}
    settings = load(issuer=issuer, dev_mode=True, **overrides)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = data_dir / SECRET_KEY_FILE
    configured_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if not key_file.exists() and not configured_key:
        write_private(key_file, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    typer.echo("Preparing the database ...")
    _migrate(settings)
    admin = run(settings, lambda rt: _bootstrap_dev(rt, data_dir))
    demo = run(settings, lambda rt: _bootstrap_demo_client(rt, data_dir, issuer))
    typer.echo("")
    typer.echo(f"  Ostiary {__version__} (development mode)")
    typer.echo(f"  Issuer:          {issuer}")
    typer.echo(f"  Sign in:         {issuer}/login")
    typer.echo(f"  Admin e-mail:    {admin['email']}")
    typer.echo(f"  Admin password:  {admin['password']}")
    typer.echo(f"  Demo app:        {issuer}/demo")
    typer.echo(f"  Demo client id:  {demo['client_id']}")
    typer.echo(f"  Demo secret:     {demo['client_secret']}")
    typer.echo(f"  Discovery:       {issuer}/.well-known/openid-configuration")
    webauthn = settings.webauthn
    typer.echo(
        f"  Passkeys:        on (relying party {webauthn.rp_id})"
        if webauthn
        else f"  Passkeys:        off ({settings.webauthn_off})"
    )
    if settings.api_docs_enabled:
        typer.echo(f"  API docs:        {issuer}/docs")
    typer.echo(f"  Data directory:  {data_dir.resolve()}")
    typer.echo("")
    _serve(settings, host, port)


async def _bootstrap_dev(rt: Any, data_dir: Path) -> dict[str, str]:
    """First signing keys and dev admin; the admin's password is kept in the data dir (0600)."""
    from ostiary.features.accounts.service import UnknownUser

    admin_file = data_dir / DEV_ADMIN_FILE
    async with rt.unit() as unit:
        await unit.keys.ensure_keys()
        try:
            await unit.accounts.get_by_email(DEV_ADMIN_EMAIL)
        except UnknownUser:
            password = secrets.token_urlsafe(18)
            await unit.accounts.create_user(
                DEV_ADMIN_EMAIL, password, name="Dev Admin", email_verified=True, actor="cli"
            )
            admin_file.unlink(missing_ok=True)
            write_private(
                admin_file, orjson.dumps({"email": DEV_ADMIN_EMAIL, "password": password}).decode()
            )
    if admin_file.is_file():
        stored: dict[str, str] = orjson.loads(admin_file.read_bytes())
        return stored
    return {"email": DEV_ADMIN_EMAIL, "password": "(changed since; not shown)"}


async def _bootstrap_demo_client(rt: Any, data_dir: Path, issuer: str) -> dict[str, str]:
    """The demo client for ``/demo``, registered for this issuer; kept in the data dir (0600)."""
    from ostiary.features.clients.service import ClientRegistration
    from ostiary.web.app import DEV_CLIENT_FILE

    demo_file = data_dir / DEV_CLIENT_FILE
    stored: dict[str, str] = orjson.loads(demo_file.read_bytes()) if demo_file.is_file() else {}
    async with rt.unit() as unit:
        existing = await unit.clients.get(stored.get("client_id", "ostiary-demo"))
        if existing is not None and stored.get("issuer") == issuer:
            return stored
        if existing is not None:
            await unit.clients.delete(existing.client_id, actor="cli")
        client, secret = await unit.clients.register(
            ClientRegistration(
                client_id="ostiary-demo",
                name="Ostiary demo app",
                redirect_uris=(f"{issuer}/demo/callback",),
                post_logout_redirect_uris=(f"{issuer}/demo",),
            ),
            actor="cli",
        )
    data = {
        "client_id": client.client_id,
        "client_secret": str(secret),
        "issuer": issuer,
        "redirect_uri": f"{issuer}/demo/callback",
        "post_logout_redirect_uri": f"{issuer}/demo",
    }
    demo_file.unlink(missing_ok=True)
    write_private(demo_file, orjson.dumps(data).decode())
    return data


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(settings: Settings, requested: int | None) -> int:
    """The number of worker processes: ``--workers``, else OSTIARY_WORKERS; 0 picks one per core
    when Redis holds the throttle, else one. More than one without Redis is refused."""
    count = settings.workers if requested is None else requested
    shared = settings.redis_url is not None
    if count == 0:
        return _cores() if shared else 1
    if count > 1 and not shared:
        raise ConfigError(
            f"{count} workers need OSTIARY_REDIS_URL: without Redis each worker keeps its own "
            "sign-in throttle, which would allow that many times the failed attempts"
        )
    return count


def _serve_workers(settings: Settings, host: str, port: int, workers: int) -> None:
    from uvicorn.supervisors import Multiprocess

    from ostiary.web.logs import configure_logging, stop_logging

    configure_logging(settings.log_level, settings.log_json)
    # The workers are new interpreters that read the environment: what this invocation set
    # otherwise (the root --data-dir option) goes there too.
    os.environ["OSTIARY_DATA_DIR"] = str(settings.data_dir)
    metrics_dir = tempfile.mkdtemp(prefix="ostiary-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    config = _uvicorn_config(
        settings,
        "ostiary.web.app:create_worker_app",
        host,
        port,
        factory=True,
        workers=workers,
        # How long a new worker may take to serve (on SIGHUP the supervisor gives up the
        # restart, keeping the old worker, if a replacement is not ready by then), and how
        # long a worker may leave a health check unanswered before it is killed. uvicorn's 5 s
        # is about what a worker takes to import and start on a loaded machine: a restart
        # there was silently abandoned.
        timeout_worker_healthcheck=WORKER_HEALTH_TIMEOUT_SECONDS,
    )
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        socket = config.bind_socket()
        # Handles SIGINT / SIGTERM (graceful stop of every worker) and SIGHUP (rolling restart).
        Multiprocess(config, sockets=[socket]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        stop_logging()


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=256,
            help="Worker processes (default OSTIARY_WORKERS; 0: one per core with Redis, "
            "else 1). More than one needs OSTIARY_REDIS_URL.",
        ),
    ] = None,
) -> None:
    """Start the production server. Needs OSTIARY_SECRET_KEY (or a key file) and OSTIARY_ISSUER."""
    settings = load()
    try:
        settings.require_issuer()
        settings.secret_key_bytes()
        count = worker_count(settings, workers)
    except ConfigError as exc:
        fail(str(exc))
    if count == 1:
        _serve(settings, host, port)
    else:
        _serve_workers(settings, host, port, count)


def _migrate(settings: Settings) -> None:
    from ostiary.storage.sqla.migrate import upgrade

    try:
        upgrade(settings.effective_database_url())
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")


def migrate(json: JsonOpt = False) -> None:
    """Upgrade the database schema to the latest revision."""
    from ostiary.storage.sqla.migrate import head_revision

    settings = load()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _migrate(settings)
    if json:
        print_json({"revision": head_revision()})
    else:
        typer.echo(f"database is at the latest revision ({head_revision()})")


def purge(json: JsonOpt = False) -> None:
    """Delete expired records now (revocations, codes, refresh families, sessions, assertion
    ids); servers do this every OSTIARY_PURGE_INTERVAL_SECONDS."""

    async def work(rt: Any) -> dict[str, int]:
        deleted: dict[str, int] = await rt.purge_expired()
        return deleted

    deleted = run(load(), work)
    if json:
        print_json({"deleted": deleted})
        return
    for kind, count in deleted.items():
        typer.echo(f"{kind}: {count} deleted")
