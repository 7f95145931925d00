"""A fresh production deployment issues tokens without a manual step (issue 9, item 6).

The documented production path, as a new user runs it: ``ostiary migrate``, ``ostiary clients
create``, then ``ostiary serve``, here three replicas started together on one fresh database
(one SQLite file, or one PostgreSQL database + Redis). Each replica creates the first signing
key if there is none; the database guards the insert, so exactly one key results. Every
replica answers ``/readyz`` 200 only once a key can sign, and then issues client_credentials
tokens to Authlib that verify with joserfc against the published JWKS.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.harness import BACKENDS, backend_vars, base_env, free_port, run_cli

pytestmark = pytest.mark.e2e

REPLICAS = 3
SERVE = (sys.executable, "-m", "ostiary", "serve", "--host", "127.0.0.1")
READY_TIMEOUT_S = 60.0


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr or result.stdout
    return result.stdout


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, issuer: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        assert process.poll() is None, f"a replica exited with {process.returncode}"
        try:
            ready = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if ready.status_code == 200:
                # The answer comes from our replica (not another process on a reused port).
                meta = httpx.get(f"{base_url}/.well-known/openid-configuration", timeout=2.0)
                assert meta.json()["issuer"] == issuer
                return
            last = f"{ready.status_code} {ready.text[:300]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}"
        time.sleep(0.1)
    pytest.fail(f"replica {base_url} not ready within {READY_TIMEOUT_S:.0f} s: {last}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrate_create_client_serve_replicas_then_client_credentials(
    backend: str, tmp_path: Path
) -> None:
    with backend_vars(backend) as storage_env:
        ports = [free_port() for _ in range(REPLICAS)]
        issuer = f"http://127.0.0.1:{ports[0]}"  # one issuer, as behind a load balancer
        env = {
            **base_env(),
            "OSTIARY_DATA_DIR": str(tmp_path / "data"),
            "OSTIARY_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "OSTIARY_ISSUER": issuer,
            **storage_env,
        }
        _ok(run_cli(env, "migrate", cwd=tmp_path))
        created = orjson.loads(
            _ok(
                run_cli(
                    env,
                    *("clients", "create", "--name", "Batch", "--grant-type"),
                    *("client_credentials", "--scope", "reports:read", "--json"),
                    cwd=tmp_path,
                )
            )
        )
        assert orjson.loads(_ok(run_cli(env, "keys", "list", "--json", cwd=tmp_path))) == []
        replicas = [
            subprocess.Popen(
                [*SERVE, "--port", str(port)],
                env=env,
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=(tmp_path / f"replica{i}.out").open("wb"),
                stderr=(tmp_path / f"replica{i}.err").open("wb"),
                start_new_session=True,
            )
            for i, port in enumerate(ports)
        ]
        try:
            for process, port in zip(replicas, ports, strict=True):
                _wait_ready(process, f"http://127.0.0.1:{port}", issuer)
            keys = orjson.loads(_ok(run_cli(env, "keys", "list", "--json", cwd=tmp_path)))
            # Exactly one key per algorithm, though the replicas started together.
            assert sorted((k["alg"], k["state"]) for k in keys) == [
                ("ES256", "active"),
                ("EdDSA", "active"),
                ("RS256", "active"),
            ], keys
            for port in ports:
                base_url = f"http://127.0.0.1:{port}"
                with OAuth2Client(
                    client_id=created["client_id"],
                    client_secret=created["client_secret"],
                    scope="reports:read",
                    timeout=15.0,
                ) as oauth:
                    token = oauth.fetch_token(f"{base_url}/token", grant_type="client_credentials")
                jwks = KeySet.import_key_set(
                    httpx.get(f"{base_url}/.well-known/jwks.json", timeout=10).json()
                )
                decoded = jwt.decode(token["access_token"], jwks)
                assert decoded.header["kid"] == keys[0]["kid"]
                assert decoded.claims["iss"] == issuer
                assert decoded.claims["client_id"] == created["client_id"]
                assert decoded.claims["scope"] == "reports:read"
        finally:
            for process in replicas:
                process.terminate()
            for process in replicas:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        for i in range(REPLICAS):
            assert "Traceback" not in (tmp_path / f"replica{i}.err").read_text()
