#!/usr/bin/env python3
"""Fresh refresh tokens for the refresh load of ``bench/tokens.sh``, obtained over HTTP.

Runs the real authorization code flow with PKCE (RFC 6749 section 4.1, RFC 7636 S256) against
a running server, like a relying party and a browser would: the sign-in form is read and
submitted with its CSRF token (``tests/e2e/httpflow.py``), then each token is one
``GET /authorize`` (answered with a 303 to the redirect URI: the client is first-party, so no
consent page but the first one, for ``offline_access``, which is answered and remembered) and
one ``POST /token`` with the ``code_verifier``.
The session is signed in once; every token starts its own refresh family (RFC 9700
section 4.14.2: rotation, reuse of a spent token revokes the family), so tokens never
interfere with each other.

Writes one token per line to standard output:

    uv run python bench/refresh_tokens.py --base-url http://127.0.0.1:8191 \\
        --client-id ID --client-secret SECRET --redirect-uri URI \\
        --email admin@example.com --count 100 < password
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.httpflow import find_form, login_error, sign_in, submit


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _code_from(response: httpx.Response, redirect_uri: str, state: str) -> str:
    if response.status_code != 303:
        raise RuntimeError(f"authorization gave {response.status_code}: {response.text[:500]}")
    location = urlsplit(response.headers["location"])
    if f"{location.scheme}://{location.netloc}{location.path}" != redirect_uri:
        raise RuntimeError(f"redirected to {response.headers['location']}")
    query = parse_qs(location.query)
    if query.get("state") != [state] or "code" not in query:
        raise RuntimeError(f"no code for our state in {response.headers['location']}")
    return query["code"][0]


def _authorize(browser: httpx.Client, args: argparse.Namespace, password: str) -> str:
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(12)
    url = "/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": args.client_id,
            "redirect_uri": args.redirect_uri,
            "scope": "openid offline_access",
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = browser.get(url)
    if response.status_code == 303 and response.headers["location"].startswith("/login?"):
        next_param = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
        signed = sign_in(browser, args.email, password, next_param=next_param)
        if signed.status_code != 303:
            raise RuntimeError(f"sign-in failed: {login_error(signed.text)}")
        response = browser.get(signed.headers["location"])
    if response.status_code == 200 and 'id="consent-form"' in response.text:
        response = submit(browser, find_form(response.text, "/authorize/consent"), decision="allow")
    code = _code_from(response, args.redirect_uri, state)
    token = browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": args.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(args.client_id, args.client_secret),
    )
    if token.status_code != 200 or "refresh_token" not in token.json():
        raise RuntimeError(f"token endpoint gave {token.status_code}: {token.text[:500]}")
    value: str = token.json()["refresh_token"]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    with httpx.Client(base_url=args.base_url, follow_redirects=False, timeout=30.0) as browser:
        for _ in range(args.count):
            print(_authorize(browser, args, password), flush=True)


if __name__ == "__main__":
    main()
