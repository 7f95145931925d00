"""ostiary.config: environment contract, secret handling, validation errors as one line."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from ostiary.config import ConfigError, Settings, load_settings

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("OSTIARY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_reads_flat_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OSTIARY_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("OSTIARY_ISSUER", "https://id.example.com/")
    monkeypatch.setenv("OSTIARY_SECRET_KEY", KEY)
    monkeypatch.setenv("OSTIARY_REDIS_URL", "redis://:pw@localhost:6379/0")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "d"
    assert settings.issuer == "https://id.example.com"  # trailing slash dropped
    assert len(settings.secret_key_bytes()) == 32
    assert settings.sessions.cookie_name == "__Host-ostiary_session"
    assert settings.sessions.cookie_secure is True


def test_database_pool_size_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings(data_dir=tmp_path).db.pool_size == 10
    monkeypatch.setenv("OSTIARY_DATABASE_POOL_SIZE", "8")
    assert Settings(data_dir=tmp_path).db.pool_size == 8
    monkeypatch.setenv("OSTIARY_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Settings(data_dir=tmp_path)


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url() == f"sqlite:///{tmp_path / 'ostiary.db'}"


def test_secret_key_from_the_data_dir_file(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text(KEY + "\n")
    assert len(Settings(data_dir=tmp_path).secret_key_bytes()) == 32


@pytest.mark.parametrize("value", [None, "short", "not base64 !!"])
def test_missing_or_bad_secret_key_is_a_config_error(tmp_path: Path, value: str | None) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=value)
    with pytest.raises(ConfigError):
        settings.secret_key_bytes()


@pytest.mark.parametrize(
    "value",
    [
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  # unpadded (RFC 4648 section 3.2)
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",  # padded, as `ostiary dev` writes it
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",  # unused bits set: typed by hand
    ],
)
def test_secret_key_is_base64url_with_or_without_padding(tmp_path: Path, value: str) -> None:
    assert Settings(data_dir=tmp_path, secret_key=value).secret_key_bytes() == bytes(range(32))


def test_missing_issuer_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OSTIARY_ISSUER"):
        Settings(data_dir=tmp_path).require_issuer()


@pytest.mark.parametrize(
    "issuer",
    [
        "http://id.example.com",
        "http://10.0.0.5:8000",
        "http://0.0.0.0:8000",
        "http://[2001:db8::1]",
    ],
)
def test_plain_http_issuer_off_loopback_is_refused(tmp_path: Path, issuer: str) -> None:
    settings = Settings(data_dir=tmp_path, issuer=issuer)
    with pytest.raises(ConfigError, match="OSTIARY_ALLOW_INSECURE_ISSUER") as info:
        settings.require_issuer()
    assert "\n" not in str(info.value)
    allowed = Settings(data_dir=tmp_path, issuer=issuer, allow_insecure_issuer=True)
    assert allowed.require_issuer() == issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "https://id.example.com",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:8000",
        "http://localhost:8000",
        "http://id.localhost",
    ],
)
def test_https_or_loopback_issuer_is_accepted(tmp_path: Path, issuer: str) -> None:
    assert Settings(data_dir=tmp_path, issuer=issuer).require_issuer() == issuer


def test_allow_insecure_issuer_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OSTIARY_ISSUER", "http://id.example.com")
    monkeypatch.setenv("OSTIARY_ALLOW_INSECURE_ISSUER", "true")
    assert load_settings(data_dir=tmp_path).require_issuer() == "http://id.example.com"


@pytest.mark.parametrize("issuer", ["ftp://x", "not a url", "https://x/?q=1", "https://x/#f"])
def test_invalid_issuer_is_one_line(monkeypatch: pytest.MonkeyPatch, issuer: str) -> None:
    monkeypatch.setenv("OSTIARY_ISSUER", issuer)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("invalid setting OSTIARY_ISSUER")
    assert "\n" not in str(info.value)


def test_invalid_number_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTIARY_ACCESS_TOKEN_TTL_SECONDS", "forever")
    with pytest.raises(ConfigError, match="OSTIARY_ACCESS_TOKEN_TTL_SECONDS"):
        load_settings()


def test_masked_hides_secrets_and_url_passwords(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        secret_key=KEY,
        database_url="postgresql+asyncpg://app:s3cr3t@db/ostiary",
        redis_url="redis://:r3d1s@cache:6379/0",
    )
    shown = str(settings.masked())
    assert KEY not in shown
    assert "s3cr3t" not in shown
    assert "r3d1s" not in shown
    assert "app:****@db" in shown


def test_token_slice_bounds_key_retention_by_the_longest_token(tmp_path: Path) -> None:
    """The longest of the global TTLs and the cap on clients' own TTLs, whichever is larger."""

    def longest(**ttls: int) -> float:
        settings = Settings(_env_file=None, data_dir=tmp_path, **ttls)  # type: ignore[call-arg]
        return settings.tokens.max_token_ttl.total_seconds()

    assert longest() == 86400  # a client may be registered with a day by default
    cap = {"client_token_ttl_max_seconds": 600}
    assert longest(access_token_ttl_seconds=300, id_token_ttl_seconds=900, **cap) == 900
    assert longest(access_token_ttl_seconds=1200, id_token_ttl_seconds=60, **cap) == 1200
    assert longest(access_token_ttl_seconds=60, id_token_ttl_seconds=60, **cap) == 600


@pytest.mark.parametrize(
    ("env", "private", "http_loopback"),
    [
        ({}, False, False),
        ({"OSTIARY_DEV_MODE": "true"}, True, True),
        ({"OSTIARY_JWKS_URI_ALLOW_PRIVATE": "true"}, True, False),
        ({"OSTIARY_JWKS_URI_ALLOW_HTTP_LOOPBACK": "1"}, False, True),
        (
            {"OSTIARY_DEV_MODE": "true", "OSTIARY_JWKS_URI_ALLOW_PRIVATE": "false"},
            False,
            True,
        ),
    ],
)
def test_jwks_uri_destinations_are_public_only_unless_dev_mode_or_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], private: bool, http_loopback: bool
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    policy = load_settings().jwks_uri
    assert policy.allow_private is private
    assert policy.allow_http_loopback is http_loopback


def test_forwarded_allow_ips_default_loopback_and_validated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings(data_dir=tmp_path).forwarded_allow_ips == "127.0.0.1,::1"
    monkeypatch.setenv("OSTIARY_FORWARDED_ALLOW_IPS", " 10.0.0.0/8, 192.0.2.7 ,fd00::/8,")
    assert load_settings().forwarded_allow_ips == "10.0.0.0/8,192.0.2.7,fd00::/8"
    monkeypatch.setenv("OSTIARY_FORWARDED_ALLOW_IPS", "")
    assert load_settings().forwarded_allow_ips == ""  # trust no proxy
    for bad in ("*", "lb.internal", "10.0.0.1/8", "10.0.0.300"):
        monkeypatch.setenv("OSTIARY_FORWARDED_ALLOW_IPS", bad)
        with pytest.raises(ConfigError, match="OSTIARY_FORWARDED_ALLOW_IPS"):
            load_settings()


def test_known_device_cookie_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    throttle = Settings(data_dir=tmp_path, issuer="https://id.example").throttle
    assert throttle.known_device_ttl is not None
    assert throttle.known_device_ttl.days == 90
    assert throttle.device_cookie_name == "__Host-ostiary_device"
    monkeypatch.setenv("OSTIARY_LOGIN_KNOWN_DEVICE_DAYS", "0")
    assert load_settings(data_dir=tmp_path).throttle.known_device_ttl is None


def test_signing_algorithms_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = load_settings().tokens
    assert tokens.signing_algs == ("ES256", "RS256", "EdDSA")
    assert (tokens.id_token_alg, tokens.access_token_alg) == ("RS256", "ES256")
    monkeypatch.setenv("OSTIARY_SIGNING_ALGS", "EdDSA, ES256")
    monkeypatch.setenv("OSTIARY_ID_TOKEN_SIGNING_ALG", "EdDSA")
    tokens = load_settings().tokens
    assert tokens.signing_algs == ("ES256", "EdDSA")
    assert (tokens.id_token_alg, tokens.access_token_alg) == ("EdDSA", "ES256")


@pytest.mark.parametrize(
    "env",
    [
        {"OSTIARY_SIGNING_ALGS": "ES256,HS256"},
        {"OSTIARY_SIGNING_ALGS": " , "},
        {"OSTIARY_SIGNING_ALGS": "ES256"},  # the RS256 ID token default is not enabled
        {"OSTIARY_SIGNING_ALGS": "RS256", "OSTIARY_ACCESS_TOKEN_SIGNING_ALG": "ES256"},
    ],
)
def test_signing_algorithms_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="SIGNING_ALG"):
        load_settings()


def test_the_former_single_signing_alg_is_the_default_of_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSTIARY_SIGNING_ALG", "EdDSA")
    tokens = load_settings().tokens
    assert (tokens.id_token_alg, tokens.access_token_alg) == ("EdDSA", "EdDSA")
    monkeypatch.setenv("OSTIARY_ID_TOKEN_SIGNING_ALG", "RS256")  # an explicit one wins
    assert load_settings().tokens.id_token_alg == "RS256"


def test_reauth_seconds_and_its_deprecated_mfa_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().reauth_seconds == 600
    monkeypatch.setenv("OSTIARY_MFA_REAUTH_SECONDS", "120")  # the former name still works
    assert load_settings().reauth_seconds == 120
    monkeypatch.setenv("OSTIARY_REAUTH_SECONDS", "300")  # the new name wins
    assert load_settings().reauth_seconds == 300
    monkeypatch.setenv("OSTIARY_REAUTH_SECONDS", "-1")
    with pytest.raises(ConfigError, match="OSTIARY_REAUTH_SECONDS"):
        load_settings()


def test_mfa_enrollment_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().mfa_enrollment_seconds == 900
    monkeypatch.setenv("OSTIARY_MFA_ENROLLMENT_SECONDS", "10")
    with pytest.raises(ConfigError, match="OSTIARY_MFA_ENROLLMENT_SECONDS"):
        load_settings()


# -- passkeys: the WebAuthn relying party ----------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origins"),
    [
        ("https://id.example.com/auth", "id.example.com", ("https://id.example.com",)),
        ("https://ID.Example.com:8443", "id.example.com", ("https://id.example.com:8443",)),
        ("http://localhost:8000", "localhost", ("http://localhost:8000",)),
    ],
)
def test_the_relying_party_is_derived_from_the_issuer(
    issuer: str, rp_id: str, origins: tuple[str, ...]
) -> None:
    webauthn = Settings(issuer=issuer).webauthn
    assert webauthn is not None
    assert (webauthn.rp_id, webauthn.origins, webauthn.rp_name) == (rp_id, origins, "Ostiary")


@pytest.mark.parametrize(
    ("issuer", "why"),
    [
        ("http://127.0.0.1:8000", "an IP address cannot be a WebAuthn relying party id"),
        ("https://[::1]:8443", "an IP address cannot be a WebAuthn relying party id"),
        ("http://testserver", "plain http is a secure context on localhost only"),
        (None, "no issuer"),
    ],
)
def test_passkeys_are_off_when_the_issuer_cannot_carry_them(issuer: str | None, why: str) -> None:
    settings = Settings(issuer=issuer)
    assert settings.webauthn is None
    assert settings.webauthn_off is not None and why in settings.webauthn_off


def test_the_relying_party_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTIARY_ISSUER", "https://login.example.com")
    monkeypatch.setenv("OSTIARY_WEBAUTHN_RP_ID", "Example.com")
    monkeypatch.setenv(
        "OSTIARY_WEBAUTHN_ORIGINS", "https://login.example.com, https://app.example.com/,"
    )
    monkeypatch.setenv("OSTIARY_WEBAUTHN_RP_NAME", "Example")
    webauthn = load_settings().webauthn
    assert webauthn is not None
    assert webauthn.rp_id == "example.com" and webauthn.rp_name == "Example"
    assert webauthn.origins == ("https://login.example.com", "https://app.example.com")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OSTIARY_WEBAUTHN_RP_ID": "192.0.2.1"}, "OSTIARY_WEBAUTHN_RP_ID: "),
        ({"OSTIARY_WEBAUTHN_RP_ID": "exa mple.com"}, "not a domain name"),
        ({"OSTIARY_WEBAUTHN_ORIGINS": "http://app.example.com"}, "plain http"),
        ({"OSTIARY_WEBAUTHN_ORIGINS": "https://example.com/path"}, "scheme://host[:port] only"),
        ({"OSTIARY_WEBAUTHN_ORIGINS": "ftp://example.com"}, "not an http(s) origin"),
        ({"OSTIARY_WEBAUTHN_ORIGINS": " , "}, "list one or more origins"),
        ({"OSTIARY_WEBAUTHN_RP_ID": "other.example"}, "is not other.example or a subdomain"),
        (
            {"OSTIARY_WEBAUTHN_ORIGINS": "https://notexample.com"},
            "is not login.example.com or a subdomain",
        ),
    ],
)
def test_relying_party_settings_that_cannot_work_are_one_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("OSTIARY_ISSUER", "https://login.example.com")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_secret_key_in_the_standard_alphabet_still_opens(tmp_path: Path) -> None:
    """``openssl rand -base64 32`` writes '+', '/' and padding: keys set so before signed
    values became strict (protocol/signed_fields.py) must keep opening what they sealed."""
    raw = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFF, 0xFE])
    value = base64.b64encode(raw).decode()
    assert "+" in value and "/" in value and value.endswith("=")
    assert Settings(data_dir=tmp_path, secret_key=value).secret_key_bytes() == raw
