"""``ostiary clients``: OAuth clients (applications)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ostiary.cli._common import JsonOpt, fail, load, print_json, run

__all__ = ["app"]

app = typer.Typer(help="Manage OAuth clients (applications).", no_args_is_help=True)


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
        # None: the deployment default (OSTIARY_ID_TOKEN_SIGNING_ALG / ..._ACCESS_TOKEN_...).
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "access_token_signed_response_alg": client.access_token_signed_response_alg,
        "first_party": client.first_party,
        "pkce": client.pkce,
        "org_scoped": client.org_scoped,
        "access_token_ttl": client.access_token_ttl,
        "id_token_ttl": client.id_token_ttl,
        "refresh_token_ttl": client.refresh_token_ttl,
        "disabled": client.disabled,
        "created_at": client.created_at.isoformat(),
    }


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        fail(f"cannot read a JWK Set from {path}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        fail(f"{path} is not a JWK Set (an object with a 'keys' array)")
    if any(isinstance(k, dict) and "d" in k for k in data["keys"]):
        fail(f"{path} contains a private key; register public keys only")
    return data


_PKCE_HELP = (
    "When PKCE (S256) is needed: required (always), nonce (default for confidential "
    "clients: PKCE, or an OpenID request with a nonce; RFC 9700 section 2.1.1) or optional "
    "(weaker: legacy OAuth 2.0 clients only). Public clients are always required."
)


@app.command("create")
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
    pkce: Annotated[str | None, typer.Option("--pkce", help=_PKCE_HELP)] = None,
    org_scoped: Annotated[
        bool,
        typer.Option(
            "--org-scoped",
            help="Tokens carry the user's active organization (org_id), and with the roles "
            "scope its org_roles and permissions.",
        ),
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
    id_token_alg: Annotated[
        str | None,
        typer.Option(
            "--id-token-alg",
            help="ES256, RS256 or EdDSA: the ID token signing algorithm "
            "(id_token_signed_response_alg; default OSTIARY_ID_TOKEN_SIGNING_ALG, RS256).",
        ),
    ] = None,
    access_token_alg: Annotated[
        str | None,
        typer.Option(
            "--access-token-alg",
            help="ES256, RS256 or EdDSA: the access token signing algorithm "
            "(default OSTIARY_ACCESS_TOKEN_SIGNING_ALG, ES256).",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Register an OAuth client; its secret is printed once and never again."""
    from ostiary.features.clients.service import (
        DEFAULT_SCOPES,
        ClientRegistration,
        InvalidClientMetadata,
    )

    registration = ClientRegistration(
        name=name,
        redirect_uris=tuple(redirect_uri or ()),
        public=public,
        post_logout_redirect_uris=tuple(post_logout_redirect_uri or ()),
        grant_types=tuple(grant_type) if grant_type else ("authorization_code", "refresh_token"),
        scopes=tuple(scope) if scope else DEFAULT_SCOPES,
        resources=tuple(resource or ()),
        introspection_audiences=tuple(introspect_audience or ()),
        auth_method=auth_method,
        first_party=first_party,
        jwks=_read_jwks(jwks_file) if jwks_file else None,
        jwks_uri=jwks_uri,
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        id_token_ttl=id_token_ttl,
        pkce=pkce,
        id_token_signed_response_alg=id_token_alg,
        access_token_signed_response_alg=access_token_alg,
        org_scoped=org_scoped,
    )

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.register(registration, actor="cli")

    try:
        client, secret = run(load(), work)
    except InvalidClientMetadata as exc:
        fail(str(exc))
    data = {**_client_dict(client), "client_secret": secret}
    if json:
        print_json(data)
        return
    typer.echo(f"created client {client.client_id} ({client.name})")
    if secret:
        typer.echo(f"client secret (shown once): {secret}")


@app.command("list")
def clients_list(json: JsonOpt = False) -> None:
    """List OAuth clients."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.list()

    rows = [_client_dict(c) for c in run(load(), work)]
    if json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['client_id']}  {row['type']:<12} {row['name']}")


@app.command("rotate-secret")
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
        client, secret = run(load(), work)
    except InvalidClientMetadata as exc:
        fail(str(exc))
    expires = client.previous_secret_expires_at
    data = {
        "client_id": client.client_id,
        "client_secret": secret,
        "previous_secret_expires_at": expires.isoformat() if expires else None,
    }
    if json:
        print_json(data)
        return
    typer.echo(f"new client secret (shown once): {secret}")
    typer.echo(f"the previous secret works until {data['previous_secret_expires_at']}")


@app.command("delete")
def clients_delete(client_id: str, json: JsonOpt = False) -> None:
    """Delete a client; its tokens stop working."""

    async def work(rt: Any) -> bool:
        async with rt.unit() as unit:
            deleted: bool = await unit.clients.delete(client_id, actor="cli")
            if deleted:
                await unit.revocation.revoke("client", client_id)
            return deleted

    deleted = run(load(), work)
    if json:
        print_json({"client_id": client_id, "deleted": deleted})
    elif deleted:
        typer.echo(f"deleted client {client_id}")
    if not deleted:
        fail(f"no client {client_id!r}")


_REPLACES = " Replaces the whole list (repeat the option for each value)."


@app.command("update")
def clients_update(
    client_id: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Exact redirect URI." + _REPLACES)
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option("--post-logout-redirect-uri", help=_REPLACES.strip())
    ] = None,
    no_post_logout_redirect_uris: Annotated[
        bool, typer.Option("--no-post-logout-redirect-uris", help="Remove them all.")
    ] = False,
    grant_type: Annotated[
        list[str] | None,
        typer.Option(
            "--grant-type",
            help="authorization_code, refresh_token, client_credentials." + _REPLACES,
        ),
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Allowed scope." + _REPLACES)
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="Allowed audience URI." + _REPLACES)
    ] = None,
    no_resources: Annotated[
        bool, typer.Option("--no-resources", help="Remove every allowed resource.")
    ] = False,
    introspect_audience: Annotated[
        list[str] | None,
        typer.Option("--introspect-audience", help="As at create." + _REPLACES),
    ] = None,
    no_introspect_audiences: Annotated[
        bool, typer.Option("--no-introspect-audiences", help="Remove them all.")
    ] = False,
    auth_method: Annotated[
        str | None,
        typer.Option(
            "--auth-method",
            help="client_secret_basic or client_secret_post for a client with a secret (it "
            "may use either anyway); private_key_jwt if it has keys",
        ),
    ] = None,
    pkce: Annotated[str | None, typer.Option("--pkce", help=_PKCE_HELP)] = None,
    id_token_alg: Annotated[
        str | None,
        typer.Option(
            "--id-token-alg",
            help="ES256, RS256, EdDSA, or default (OSTIARY_ID_TOKEN_SIGNING_ALG)",
        ),
    ] = None,
    access_token_alg: Annotated[
        str | None,
        typer.Option(
            "--access-token-alg",
            help="ES256, RS256, EdDSA, or default (OSTIARY_ACCESS_TOKEN_SIGNING_ALG)",
        ),
    ] = None,
    first_party: Annotated[
        bool | None,
        typer.Option("--first-party/--third-party", help="Whether users are asked to consent."),
    ] = None,
    org_scoped: Annotated[
        bool | None,
        typer.Option(
            "--org-scoped/--not-org-scoped",
            help="Whether tokens carry the user's active organization (and roles with the "
            "roles scope).",
        ),
    ] = None,
    access_token_ttl: Annotated[
        int | None, typer.Option("--access-token-ttl", min=0, help="Seconds; 0: global default.")
    ] = None,
    id_token_ttl: Annotated[
        int | None, typer.Option("--id-token-ttl", min=0, help="Seconds; 0: global default.")
    ] = None,
    refresh_token_ttl: Annotated[
        int | None,
        typer.Option("--refresh-token-ttl", min=0, help="Seconds; 0: global default."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Change a client's registration; its id and secret stay. Options not given are kept;
    a list option given replaces the whole list. Running servers see the change within
    seconds (their client cache)."""
    from ostiary.features.clients.service import ClientChanges, InvalidClientMetadata

    def listed(values: list[str] | None, clear: bool) -> tuple[str, ...] | None:
        if clear and values:
            fail("give a list option or its --no-... option, not both")
        return () if clear else (tuple(values) if values is not None else None)

    ttls = {
        "access_token_ttl": access_token_ttl,
        "id_token_ttl": id_token_ttl,
        "refresh_token_ttl": refresh_token_ttl,
    }
    changes = ClientChanges(
        name=name,
        redirect_uris=listed(redirect_uri, False),
        post_logout_redirect_uris=listed(post_logout_redirect_uri, no_post_logout_redirect_uris),
        grant_types=listed(grant_type, False),
        scopes=listed(scope, False),
        resources=listed(resource, no_resources),
        introspection_audiences=listed(introspect_audience, no_introspect_audiences),
        auth_method=auth_method,
        pkce=pkce,
        id_token_alg=id_token_alg,
        access_token_alg=access_token_alg,
        first_party=first_party,
        org_scoped=org_scoped,
        clear_ttls=frozenset(k for k, v in ttls.items() if v == 0),
        **{k: v or None for k, v in ttls.items()},
    )

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.clients.update(client_id, changes, actor="cli")

    try:
        client = run(load(), work)
    except InvalidClientMetadata as exc:
        fail(str(exc))
    if json:
        print_json(_client_dict(client))
        return
    typer.echo(f"updated client {client.client_id} ({client.name})")
