"""web/webauthn_state.py: the signed ceremony state (WebAuthn Level 3 section 13.4.3) is
unforgeable, bound to its purpose, user and browser, and short-lived."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from ostiary.web.webauthn_state import STATE_TTL_SECONDS, CeremonyStates

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
BROWSER = "b" * 43
CHALLENGE = secrets.token_bytes(32)


def _issued(states: CeremonyStates, user_id: str = "user-1") -> str:
    return states.issue("register", CHALLENGE, user_id, now=NOW, browser=BROWSER)


def test_a_state_reads_back_with_its_fields() -> None:
    states = CeremonyStates(secrets.token_bytes(32))
    state = states.read(_issued(states), "register", now=NOW, browser=BROWSER)
    assert state is not None
    assert (state.purpose, state.challenge, state.user_id) == ("register", CHALLENGE, "user-1")
    assert state.expires_at == NOW + timedelta(seconds=STATE_TTL_SECONDS)
    assert len(state.spent_key) == 64
    other = states.issue("register", secrets.token_bytes(32), "user-1", now=NOW, browser=BROWSER)
    assert states.read(other, "register", now=NOW, browser=BROWSER).spent_key != state.spent_key  # type: ignore[union-attr]


def test_passwordless_states_have_no_user() -> None:
    states = CeremonyStates(secrets.token_bytes(32))
    value = states.issue("authenticate", CHALLENGE, "", now=NOW, browser=BROWSER)
    state = states.read(value, "authenticate", now=NOW, browser=BROWSER)
    assert state is not None and state.user_id == ""


def test_another_purpose_browser_or_key_does_not_read() -> None:
    states = CeremonyStates(secrets.token_bytes(32))
    value = _issued(states)
    assert states.read(value, "authenticate", now=NOW, browser=BROWSER) is None
    assert states.read(value, "second-step", now=NOW, browser=BROWSER) is None
    assert states.read(value, "register", now=NOW, browser="c" * 43) is None
    assert states.read(value, "register", now=NOW, browser=None) is None
    assert (
        CeremonyStates(secrets.token_bytes(32)).read(value, "register", now=NOW, browser=BROWSER)
        is None
    )


def test_it_expires_after_five_minutes() -> None:
    states = CeremonyStates(secrets.token_bytes(32))
    value = _issued(states)
    late = NOW + timedelta(seconds=STATE_TTL_SECONDS)
    assert states.read(value, "register", now=late, browser=BROWSER) is not None
    assert states.read(value, "register", now=late + timedelta(seconds=1), browser=BROWSER) is None
    # Issued by a replica whose clock runs a little ahead: accepted; far ahead: not.
    assert states.read(value, "register", now=NOW - timedelta(seconds=60), browser=BROWSER)
    assert states.read(value, "register", now=NOW - timedelta(seconds=61), browser=BROWSER) is None


def _swap(value: str, index: int, new: str) -> str:
    parts = value.split(".")
    parts[index] = new
    return ".".join(parts)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: _swap(v, 2, "A" * 43),  # another challenge
        lambda v: _swap(v, 3, "dXNlci0y"),  # another user ("user-2")
        lambda v: _swap(v, 0, str(int(v.split(".")[0]) + 1)),  # another time
        lambda v: _swap(v, 4, "A" * 43),  # another MAC
        lambda v: v + ".x",
        lambda v: v[:-1],
        lambda v: "",
        lambda v: "x" * 600,
        lambda v: _swap(v, 0, "\uff11\uff12\uff13"),  # fullwidth (non-ASCII) digits
        lambda v: _swap(v, 1, "other"),
    ],
)
def test_a_changed_state_does_not_read(tamper: object) -> None:
    states = CeremonyStates(secrets.token_bytes(32))
    value = tamper(_issued(states))  # type: ignore[operator]
    assert states.read(value, "register", now=NOW, browser=BROWSER) is None


def test_a_state_issued_before_the_shared_helpers_still_reads() -> None:
    """The cookie's bytes, built by hand as web/webauthn_state.py made them until 2026-12-03
    (its own base64url and length-prefixed fields, now in protocol/signed_fields.py)."""
    key, challenge, user = bytes(range(32)), bytes(range(32)), "user-1\u00e9"

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    fields = ["1796259600", "register", b64(challenge), b64(user.encode()), BROWSER]
    msg = b"webauthn-ceremony" + b"".join(b"%d:%s" % (len(f), f.encode()) for f in fields)
    mac = b64(hmac.new(key, msg, hashlib.sha256).digest())
    old = ".".join([*fields[:4], mac])
    assert old == (
        "1796259600.register.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.dXNlci0xw6k."
        "KpRieiKKzLx5tf8UdrNerpcsInK1Lb4owoZ_eWCSQ2c"
    )
    states = CeremonyStates(key)
    assert states.issue("register", challenge, user, now=NOW, browser=BROWSER) == old
    state = states.read(old, "register", now=NOW, browser=BROWSER)
    assert state is not None and (state.challenge, state.user_id) == (challenge, user)
