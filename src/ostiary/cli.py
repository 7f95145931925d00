"""The ``ostiary`` command: run the server and manage users, keys and the audit trail.

Every command reads the same settings (``OSTIARY_*`` environment, ``.env``), so a CLI call and
a running server share state. Commands that print data accept ``--json``. The data directory is,
for every command, ``--data-dir`` if given (``ostiary --data-dir D COMMAND``, or
``ostiary dev --data-dir D``), else ``OSTIARY_DATA_DIR``, else ``./ostiary-data``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ostiary import __version__
from ostiary.config import SECRET_KEY_FILE, ConfigError, Settings, load_settings

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="ostiary",
    help="Ostiary: identity and access for AI products (OAuth 2.1 / OpenID Connect provider).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage token signing keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the audit trail.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
clients_app = typer.Typer(help="Manage OAuth clients (applications).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(clients_app, name="clients")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEV_ADMIN_EMAIL = "admin@ostiary.dev"
DEV_ADMIN_FILE = "dev-admin.json"


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# Options of the root command for the command about to run, set by its callback on every
# invocation (``ostiary --data-dir D COMMAND``).
_root_options: dict[str, Any] = {}


def _settings(**overrides: Any) -> Settings:
    # The root --data-dir wins over OSTIARY_DATA_DIR and .env; a command's own option over both.
    data_dir = _root_options.get("data_dir")
    if data_dir is not None:
        overrides.setdefault("data_dir", data_dir)
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        _fail(str(exc))


def _print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(runtime)`` in one event loop; domain and config errors exit 2 with one line."""
    from ostiary.features.accounts.service import AccountError
    from ostiary.web.runtime import Runtime

    async def runner() -> T:
        runtime = Runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(runner())
    except (AccountError, ConfigError, LookupError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot reach a backing service: {exc}")
    except SQLAlchemyError as exc:
        first_line = str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines()[0]
        _fail(f"database error ({first_line}); is the schema current? run `ostiary migrate`")


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ostiary {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True)
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the SQLite database and secret key live, for any command "
            "(default OSTIARY_DATA_DIR, else ./ostiary-data).",
        ),
    ] = None,
) -> None:
    """Ostiary command line."""
    _root_options["data_dir"] = data_dir


# -- server ------------------------------------------------------------------------------


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from ostiary.web.app import create_app
    from ostiary.web.logs import configure_logging, stop_logging

    configure_logging(settings.log_level, settings.log_json)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # Only these peers' X-Forwarded-For / -Proto count (client_ip, throttle buckets).
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        # SIGTERM: stop accepting, let in-flight requests finish (bounded), then exit.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal (exit 143);
    # an orderly shutdown should exit 0 so process supervisors do not report a crash.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        uvicorn.Server(config).run()
    finally:
        stop_logging()  # the log writer's queued lines (the last requests, "stopped") go out


@app.command()
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
    issuer = os.environ.get("OSTIARY_ISSUER") or f"http://{host}:{port}"
    overrides: dict[str, Any] = {} if data_dir_option is None else {"data_dir": data_dir_option}
    settings = _settings(issuer=issuer, dev_mode=True, **overrides)
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = data_dir / SECRET_KEY_FILE
    configured_key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if not key_file.exists() and not configured_key:
        _write_private(key_file, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    typer.echo("Preparing the database ...")
    _migrate(settings)
    admin = _run(settings, lambda rt: _bootstrap_dev(rt, data_dir))
    demo = _run(settings, lambda rt: _bootstrap_demo_client(rt, data_dir, issuer))
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
    if settings.api_docs_enabled:
        typer.echo(f"  API docs:        {issuer}/docs")
    typer.echo(f"  Data directory:  {data_dir.resolve()}")
    typer.echo("")
    _serve(settings, host, port)


async def _bootstrap_dev(rt: Any, data_dir: Path) -> dict[str, str]:
    """First signing key and dev admin; the admin's password is kept in the data dir (0600)."""
    from ostiary.features.accounts.service import UnknownUser

    admin_file = data_dir / DEV_ADMIN_FILE
    async with rt.unit() as unit:
        await unit.keys.ensure_key(rt.settings.signing_alg)
        try:
            await unit.accounts.get_by_email(DEV_ADMIN_EMAIL)
        except UnknownUser:
            password = secrets.token_urlsafe(18)
            await unit.accounts.create_user(
                DEV_ADMIN_EMAIL, password, name="Dev Admin", email_verified=True, actor="cli"
            )
            admin_file.unlink(missing_ok=True)
            _write_private(
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
    _write_private(demo_file, orjson.dumps(data).decode())
    return data


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Start the production server. Needs OSTIARY_SECRET_KEY (or a key file) and OSTIARY_ISSUER."""
    settings = _settings()
    try:
        settings.require_issuer()
        settings.secret_key_bytes()
    except ConfigError as exc:
        _fail(str(exc))
    _serve(settings, host, port)


def _migrate(settings: Settings) -> None:
    from ostiary.storage.sqla.migrate import upgrade

    try:
        upgrade(settings.effective_database_url())
    except OSError as exc:
        _fail(f"cannot reach the database: {exc}")


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    settings = _settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _migrate(settings)
    typer.echo("database is at the latest revision")


@config_app.command("show")
def config_show(json: JsonOpt = False) -> None:
    """Print the effective settings, secrets masked."""
    shown = _settings().masked()
    if json:
        _print_json(shown)
        return
    for name, value in sorted(shown.items()):
        typer.echo(f"{name} = {value}")


# -- users -------------------------------------------------------------------------------


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }


def _read_password_stdin() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        _fail("no password on standard input")
    return password


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail address.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Create a user; a strong password is generated and printed when none is given."""
    generated = None if password_stdin else secrets.token_urlsafe(18)
    password = _read_password_stdin() if password_stdin else str(generated)

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.accounts.create_user(email, password, name=name, actor="cli")

    user = _run(_settings(), work)
    data = _user_dict(user)
    if generated:
        data["password"] = generated
    if json:
        _print_json(data)
        return
    typer.echo(f"created {user.email} ({user.id})")
    if generated:
        typer.echo(f"password: {generated}")


@users_app.command("list")
def users_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json: JsonOpt = False,
) -> None:
    """List users."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.accounts.list_users(limit=limit, offset=offset)

    rows = [_user_dict(u) for u in _run(_settings(), work)]
    if json:
        _print_json(rows)
        return
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        typer.echo(f"{row['id']}  {row['email']:<40} {state:<9} {row['name']}")


@users_app.command("disable")
def users_disable(email: str, json: JsonOpt = False) -> None:
    """Disable a user and end all their sessions at once."""

    async def work(rt: Any) -> tuple[Any, list[str]]:
        async with rt.unit() as unit:
            before = await unit.accounts.get_by_email(email)
            sessions = await unit.sessions.list_for_user(before.id)
            user = await unit.accounts.disable(email, actor="cli")  # ends sessions and tokens
            return user, [s.sid for s in sessions]

    user, removed = _run(_settings(), work)
    if json:
        _print_json({**_user_dict(user), "sessions_revoked": len(removed)})
        return
    typer.echo(f"disabled {user.email}; {len(removed)} session(s) ended")


@users_app.command("enable")
def users_enable(email: str, json: JsonOpt = False) -> None:
    """Enable a disabled user; what the disabling ended stays ended, new sign-ins work."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.accounts.enable(email, actor="cli")

    user = _run(_settings(), work)
    if json:
        _print_json(_user_dict(user))
        return
    typer.echo(f"enabled {user.email}")


def _ended_dict(sessions: int, families: int) -> dict[str, int]:
    return {"sessions_ended": sessions, "refresh_families_revoked": families}


@users_app.command("end-sessions")
def users_end_sessions(email: str, json: JsonOpt = False) -> None:
    """End all of a user's sessions and refresh tokens (offline ones too) and their access
    tokens, at once."""

    async def work(rt: Any) -> tuple[Any, tuple[int, int]]:
        async with rt.unit() as unit:
            user = await unit.accounts.get_by_email(email)
            return user, await unit.end_user_sessions(user.id, actor="cli", reason="admin")

    user, (sessions, families) = _run(_settings(), work)
    if json:
        _print_json({**_user_dict(user), **_ended_dict(sessions, families)})
        return
    typer.echo(f"{sessions} session(s) and {families} refresh grant(s) of {user.email} ended")


@users_app.command("set-password")
def users_set_password(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    end_sessions: Annotated[
        bool,
        typer.Option(
            "--end-sessions/--no-end-sessions",
            help="Also end the user's sessions and refresh tokens (offline ones too).",
        ),
    ] = True,
    json: JsonOpt = False,
) -> None:
    """Set a user's password (read from standard input); ends their sessions by default."""
    if not password_stdin:
        _fail("pass the new password on standard input with --password-stdin")
    password = _read_password_stdin()

    async def work(rt: Any) -> tuple[Any, tuple[int, int] | None]:
        async with rt.unit() as unit:
            user = await unit.accounts.set_password(email, password, actor="cli")
            if not end_sessions:
                return user, None
            ended = await unit.end_user_sessions(user.id, actor="cli", reason="password_change")
            return user, ended

    user, ended = _run(_settings(), work)
    if json:
        _print_json({**_user_dict(user), **(_ended_dict(*ended) if ended else {})})
        return
    typer.echo(f"password changed for {user.email}")
    if ended:
        typer.echo(f"{ended[0]} session(s) and {ended[1]} refresh grant(s) ended")


# -- keys --------------------------------------------------------------------------------


@keys_app.command("list")
def keys_list(json: JsonOpt = False) -> None:
    """List signing keys with their state (next, active, retired, expired)."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.keys.describe()

    rows = _run(_settings(), work)
    if json:
        _print_json(rows)
        return
    if not rows:
        typer.echo(
            "no signing keys yet: `ostiary serve` creates the first (or `ostiary keys rotate`)"
        )
    for row in rows:
        typer.echo(
            f"{row['kid']}  {row['alg']:<6} {row['state']:<8} activates {row['activates_at']}"
        )


@keys_app.command("rotate")
def keys_rotate(
    alg: Annotated[str, typer.Option("--alg", help="ES256, RS256 or EdDSA.")] = "ES256",
    lead: Annotated[
        int | None,
        typer.Option(
            "--lead-seconds",
            min=0,
            help="Seconds between publishing the key and signing with it "
            "(default OSTIARY_KEY_PUBLISH_LEAD_SECONDS).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Add a new signing key: published in JWKS now, signing after the lead time."""
    from datetime import timedelta

    from ostiary.protocol.jose import SUPPORTED_ALGS

    if alg not in SUPPORTED_ALGS:
        _fail(f"--alg must be one of {', '.join(SUPPORTED_ALGS)}")

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.keys.rotate(
                alg, lead=None if lead is None else timedelta(seconds=lead), actor="cli"
            )

    key = _run(_settings(), work)
    data = {"kid": key.kid, "alg": key.alg, "activates_at": key.activates_at.isoformat()}
    if json:
        _print_json(data)
        return
    typer.echo(f"new {key.alg} key {key.kid}: published now, signs from {data['activates_at']}")


# -- clients -----------------------------------------------------------------------------


def _client_dict(client: Any) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "type": client.client_type,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "resources": client.resources,
        "introspection_audiences": client.introspection_audiences,
        "first_party": client.first_party,
        "disabled": client.disabled,
        "created_at": client.created_at.isoformat(),
    }


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        _fail(f"cannot read a JWK Set from {path}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        _fail(f"{path} is not a JWK Set (an object with a 'keys' array)")
    if any(isinstance(k, dict) and "d" in k for k in data["keys"]):
        _fail(f"{path} contains a private key; register public keys only")
    return data


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option("--name", help="Shown to users on the consent page.")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Exact redirect URI (repeatable).")
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="A public client (SPA, native app): no secret.")
    ] = False,
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option("--post-logout-redirect-uri", help="Repeatable.")
    ] = None,
    grant_type: Annotated[
        list[str] | None,
        typer.Option(
            "--grant-type",
            help="authorization_code, refresh_token, client_credentials (repeatable); "
            "default authorization_code + refresh_token",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Allowed scope (repeatable); default openid profile email offline_access",
        ),
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="Allowed audience URI (repeatable).")
    ] = None,
    introspect_audience: Annotated[
        list[str] | None,
        typer.Option(
            "--introspect-audience",
            help="A resource server's own audience URI (repeatable): it may introspect the "
            "tokens whose aud includes it (RFC 7662 section 4). Any client may introspect "
            "its own tokens.",
        ),
    ] = None,
    auth_method: Annotated[
        str | None,
        typer.Option(
            "--auth-method",
            help="client_secret_basic (default), client_secret_post, private_key_jwt or none",
        ),
    ] = None,
    first_party: Annotated[
        bool, typer.Option("--first-party", help="Trusted: users are not asked to consent.")
    ] = False,
    jwks_file: Annotated[
        Path | None,
        typer.Option(
            "--jwks-file", help="JWK Set (JSON) of the client's public keys (private_key_jwt)."
        ),
    ] = None,
    jwks_uri: Annotated[
        str | None,
        typer.Option(
            "--jwks-uri",
            help="https URL of the client's JWK Set, fetched by the server (instead of "
            "--jwks-file). It must reach a public address unless OSTIARY_JWKS_URI_ALLOW_PRIVATE; "
            "http only for a loopback host with OSTIARY_JWKS_URI_ALLOW_HTTP_LOOPBACK (both "
            "default to dev mode).",
        ),
    ] = None,
    access_token_ttl: Annotated[
        int | None,
        typer.Option(
            "--access-token-ttl",
            min=30,
            max=86400,
            help="Seconds (default global; at most OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS).",
        ),
    ] = None,
    refresh_token_ttl: Annotated[
        int | None,
        typer.Option("--refresh-token-ttl", min=60, help="Seconds (default global)."),
    ] = None,
    id_token_ttl: Annotated[
        int | None,
        typer.Option(
            "--id-token-ttl",
            min=30,
            max=86400,
            help="Seconds (default global; at most OSTIARY_CLIENT_TOKEN_TTL_MAX_SECONDS).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register an OAuth client; its secret is printed once and never again."""
    from ostiary.features.clients.service import ClientRegistration, InvalidClientMetadata

    registration = ClientRegistration(
        name=name,
        redirect_uris=tuple(redirect_uri or ()),
        public=public,
        post_logout_redirect_uris=tuple(post_logout_redirect_uri or ()),
        grant_types=tuple(grant_type) if grant_type else ("authorization_code", "refresh_token"),
        scopes=tuple(scope) if scope else ("openid", "profile", "email", "offline_access"),
        resources=tuple(resource or ()),
        introspection_audiences=tuple(introspect_audience or ()),
        auth_method=auth_method,
        first_party=first_party,
        jwks=_read_jwks(jwks_file) if jwks_file else None,
        jwks_uri=jwks_uri,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        id_token_ttl=id_token_ttl,
    )

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.register(registration, actor="cli")

    try:
        client, secret = _run(_settings(), work)
    except InvalidClientMetadata as exc:
        _fail(str(exc))
    data = {**_client_dict(client), "client_secret": secret}
    if json:
        _print_json(data)
        return
    typer.echo(f"created client {client.client_id} ({client.name})")
    if secret:
        typer.echo(f"client secret (shown once): {secret}")


@clients_app.command("list")
def clients_list(json: JsonOpt = False) -> None:
    """List OAuth clients."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.list()

    rows = [_client_dict(c) for c in _run(_settings(), work)]
    if json:
        _print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['client_id']}  {row['type']:<12} {row['name']}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str,
    overlap_seconds: Annotated[
        int, typer.Option("--overlap-seconds", min=0, help="How long the old secret still works.")
    ] = 86400,
    json: JsonOpt = False,
) -> None:
    """Issue a new client secret; the old one keeps working for the overlap window."""
    from datetime import timedelta

    from ostiary.features.clients.service import InvalidClientMetadata

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.rotate_secret(
                client_id, overlap=timedelta(seconds=overlap_seconds), actor="cli"
            )

    try:
        client, secret = _run(_settings(), work)
    except InvalidClientMetadata as exc:
        _fail(str(exc))
    expires = client.previous_secret_expires_at
    data = {
        "client_id": client.client_id,
        "client_secret": secret,
        "previous_secret_expires_at": expires.isoformat() if expires else None,
    }
    if json:
        _print_json(data)
        return
    typer.echo(f"new client secret (shown once): {secret}")
    typer.echo(f"the previous secret works until {data['previous_secret_expires_at']}")


@clients_app.command("delete")
def clients_delete(client_id: str, json: JsonOpt = False) -> None:
    """Delete a client; its tokens stop working."""

    async def work(rt: Any) -> bool:
        async with rt.unit() as unit:
            deleted: bool = await unit.clients.delete(client_id, actor="cli")
            if deleted:
                await unit.revocation.revoke("client", client_id)
            return deleted

    deleted = _run(_settings(), work)
    if json:
        _print_json({"client_id": client_id, "deleted": deleted})
    elif deleted:
        typer.echo(f"deleted client {client_id}")
    if not deleted:
        _fail(f"no client {client_id!r}")


# -- audit -------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(json: JsonOpt = False) -> None:
    """Check the audit trail's hash chain; exit 1 and name the first broken event if tampered."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.audit.verify()

    report = _run(_settings(), work)
    if json:
        _print_json(
            {"checked": report.checked, "intact": report.intact, "broken_at": report.broken_at}
        )
    elif report.intact:
        typer.echo(f"audit trail intact: {report.checked} event(s) verified")
    else:
        typer.echo(
            f"audit trail BROKEN at event {report.broken_at} "
            f"({report.checked} event(s) before it verified)"
        )
    if not report.intact:
        raise typer.Exit(1)


def main() -> None:
    app()
