"""``ostiary users``: user accounts."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated, Any

import typer

from ostiary.cli._common import JsonOpt, fail, load, print_json, run

__all__ = ["app"]

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
        "claims": dict(user.claims),
    }


def _mfa_dict(factors: Any) -> dict[str, Any]:
    return {
        "totp": factors.totp,
        "recovery_codes_left": factors.recovery_codes_left,
        "passkeys": factors.passkeys,
    }


def _read_password_stdin() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        fail("no password on standard input")
    return password


@app.command("create")
def users_create(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail address.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    email_verified: Annotated[
        bool,
        typer.Option(
            "--email-verified/--no-email-verified",
            help="Mark the e-mail address as verified (the email_verified claim).",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Create a user; a strong password is generated and printed when none is given."""
    generated = None if password_stdin else secrets.token_urlsafe(18)
    password = _read_password_stdin() if password_stdin else str(generated)

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.accounts.create_user(
                email, password, name=name, email_verified=email_verified, actor="cli"
            )

    user = run(load(), work)
    data = _user_dict(user)
    if generated:
        data["password"] = generated
    if json:
        print_json(data)
        return
    typer.echo(f"created {user.email} ({user.id})")
    if generated:
        typer.echo(f"password: {generated}")


@app.command("list")
def users_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json: JsonOpt = False,
) -> None:
    """List users."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            users = await unit.accounts.list_users(limit=limit, offset=offset)
            return users, await unit.mfa.factors_of([u.id for u in users])

    users, factors = run(load(), work)
    rows = [{**_user_dict(u), "mfa": _mfa_dict(factors[u.id])} for u in users]
    if json:
        print_json(rows)
        return
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        typer.echo(f"{row['id']}  {row['email']:<40} {state:<9} {row['name']}")


@app.command("disable")
def users_disable(email: str, json: JsonOpt = False) -> None:
    """Disable a user and end all their sessions at once."""

    async def work(rt: Any) -> tuple[Any, list[str]]:
        async with rt.unit() as unit:
            before = await unit.accounts.get_by_email(email)
            sessions = await unit.sessions.list_for_user(before.id)
            user = await unit.accounts.disable(email, actor="cli")  # ends sessions and tokens
            return user, [s.sid for s in sessions]

    user, removed = run(load(), work)
    if json:
        # "sessions_revoked": the former name, kept for scripts that read it.
        ended = len(removed)
        print_json({**_user_dict(user), "sessions_ended": ended, "sessions_revoked": ended})
        return
    typer.echo(f"disabled {user.email}; {len(removed)} session(s) ended")


@app.command("enable")
def users_enable(email: str, json: JsonOpt = False) -> None:
    """Enable a disabled user; what the disabling ended stays ended, new sign-ins work."""

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            return await unit.accounts.enable(email, actor="cli")

    user = run(load(), work)
    if json:
        print_json(_user_dict(user))
        return
    typer.echo(f"enabled {user.email}")


@app.command("reset-mfa")
def users_reset_mfa(email: str, json: JsonOpt = False) -> None:
    """Remove a user's second factors (passkeys, authenticator app, recovery codes) and end all
    their sessions on every node, audited: for a user who lost the factors (or whose factors
    may be in other hands). Their next sign-in asks for the password only."""

    async def work(rt: Any) -> tuple[Any, Any, list[str]]:
        async with rt.unit() as unit:
            user = await unit.accounts.get_by_email(email)
            removed = await unit.mfa.reset(user.id, actor="cli")
            # Sessions signed in with the removed factors end with them (their refresh tokens
            # and access tokens too, as any revoked session's; revocations reach every node).
            ended = await unit.sessions.revoke_all(user.id, actor="cli", reason="mfa_reset")
            return user, removed, ended

    user, removed, ended = run(load(), work)
    if json:
        print_json(
            {**_user_dict(user), "removed": _mfa_dict(removed), "sessions_ended": len(ended)}
        )
        return
    if not removed.totp and not removed.recovery_codes_left and not removed.passkeys:
        typer.echo(f"{user.email} had no second factor; {len(ended)} session(s) ended")
        return
    parts = [f"{removed.passkeys} passkey(s)"] if removed.passkeys else []
    parts += ["the authenticator app"] if removed.totp else []
    codes = removed.recovery_codes_left
    parts += [f"{codes} recovery code(s)"] if codes else []
    listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    typer.echo(f"removed {listed} of {user.email}; {len(ended)} session(s) ended")


def _ended_dict(sessions: int, families: int) -> dict[str, int]:
    return {"sessions_ended": sessions, "refresh_families_revoked": families}


@app.command("end-sessions")
def users_end_sessions(email: str, json: JsonOpt = False) -> None:
    """End all of a user's sessions and refresh tokens (offline ones too) and their access
    tokens, at once."""

    async def work(rt: Any) -> tuple[Any, tuple[int, int]]:
        async with rt.unit() as unit:
            user = await unit.accounts.get_by_email(email)
            return user, await unit.end_user_sessions(user.id, actor="cli", reason="admin")

    user, (sessions, families) = run(load(), work)
    if json:
        print_json({**_user_dict(user), **_ended_dict(sessions, families)})
        return
    typer.echo(f"{sessions} session(s) and {families} refresh grant(s) of {user.email} ended")


@app.command("set-password")
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
        fail("pass the new password on standard input with --password-stdin")
    password = _read_password_stdin()

    async def work(rt: Any) -> tuple[Any, tuple[int, int] | None]:
        async with rt.unit() as unit:
            user = await unit.accounts.set_password(email, password, actor="cli")
            if not end_sessions:
                return user, None
            ended = await unit.end_user_sessions(user.id, actor="cli", reason="password_change")
            return user, ended

    user, ended = run(load(), work)
    if json:
        print_json({**_user_dict(user), **(_ended_dict(*ended) if ended else {})})
        return
    typer.echo(f"password changed for {user.email}")
    if ended:
        typer.echo(f"{ended[0]} session(s) and {ended[1]} refresh grant(s) ended")


def _claim_option(claim: str, help_text: str) -> Any:
    return typer.Option(f"--{claim.replace('_', '-')}", help=help_text)


@app.command("update")
def users_update(
    email: str,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    email_verified: Annotated[
        bool | None,
        typer.Option("--email-verified/--no-email-verified", help="The email_verified claim."),
    ] = None,
    given_name: Annotated[str | None, _claim_option("given_name", "Given name.")] = None,
    family_name: Annotated[str | None, _claim_option("family_name", "Family name.")] = None,
    middle_name: Annotated[str | None, _claim_option("middle_name", "Middle name.")] = None,
    nickname: Annotated[str | None, _claim_option("nickname", "Nickname.")] = None,
    preferred_username: Annotated[
        str | None, _claim_option("preferred_username", "Preferred username.")
    ] = None,
    picture: Annotated[str | None, _claim_option("picture", "Picture URL (https).")] = None,
    website: Annotated[str | None, _claim_option("website", "Web page URL (https).")] = None,
    gender: Annotated[str | None, _claim_option("gender", "Gender.")] = None,
    birthdate: Annotated[
        str | None, _claim_option("birthdate", "YYYY-MM-DD, or YYYY (year only).")
    ] = None,
    zoneinfo: Annotated[
        str | None, _claim_option("zoneinfo", "Time zone, such as Europe/Paris.")
    ] = None,
    locale: Annotated[str | None, _claim_option("locale", "Language tag, such as en-US.")] = None,
    phone_number: Annotated[
        str | None, _claim_option("phone_number", "E.164, such as +14155550123.")
    ] = None,
    phone_number_verified: Annotated[
        bool | None,
        typer.Option(
            "--phone-number-verified/--no-phone-number-verified",
            help="The phone_number_verified claim.",
        ),
    ] = None,
    address_formatted: Annotated[
        str | None, typer.Option("--address-formatted", help="Full mailing address.")
    ] = None,
    address_street: Annotated[
        str | None, typer.Option("--address-street", help="Street address.")
    ] = None,
    address_locality: Annotated[
        str | None, typer.Option("--address-locality", help="City or locality.")
    ] = None,
    address_region: Annotated[
        str | None, typer.Option("--address-region", help="State, province or region.")
    ] = None,
    address_postal_code: Annotated[
        str | None, typer.Option("--address-postal-code", help="Postal code.")
    ] = None,
    address_country: Annotated[
        str | None, typer.Option("--address-country", help="Country.")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Change a user's name, email_verified and standard claims (OpenID Connect Core 5.1).

    Only the options given change; an empty value ("") removes a claim. The address options
    change only the address fields given.
    """
    given = {
        "given_name": given_name,
        "family_name": family_name,
        "middle_name": middle_name,
        "nickname": nickname,
        "preferred_username": preferred_username,
        "picture": picture,
        "website": website,
        "gender": gender,
        "birthdate": birthdate,
        "zoneinfo": zoneinfo,
        "locale": locale,
        "phone_number": phone_number,
        "phone_number_verified": phone_number_verified,
    }
    claims: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    address = {
        "formatted": address_formatted,
        "street_address": address_street,
        "locality": address_locality,
        "region": address_region,
        "postal_code": address_postal_code,
        "country": address_country,
    }
    address_given = {k: v for k, v in address.items() if v is not None}

    async def work(rt: Any) -> Any:
        async with rt.unit() as unit:
            user = await unit.accounts.get_by_email(email)
            if address_given:
                claims["address"] = {**user.claims.get("address", {}), **address_given}
            return await unit.accounts.update_profile(
                user.id, name=name, email_verified=email_verified, claims=claims, actor="cli"
            )

    user = run(load(), work)
    if json:
        print_json(_user_dict(user))
        return
    typer.echo(f"updated {user.email}")
