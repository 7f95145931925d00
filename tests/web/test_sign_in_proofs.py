"""The signed sign-in markers of /authorize (web/sign_in_proofs.py), field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ostiary.web.sign_in_proofs import PROOF_TTL_SECONDS, SignInProofs

KEY = b"k" * 32
ASKED = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
REQUEST = [
    ("client_id", "c1"),
    ("state", "s"),
    ("resource", "https://a"),
    ("resource", "https://b"),
]


def _demand(**kw: object) -> str:
    args: dict[str, object] = {"now": ASKED, "browser": "b" * 43, "session_cookie": "old"}
    args.update(kw)
    return SignInProofs(KEY).demand_sign_in(REQUEST, **args)  # type: ignore[arg-type]


def _met(marker: str, **kw: object) -> bool:
    args: dict[str, object] = {
        "request": REQUEST,
        "now": ASKED + timedelta(seconds=30),
        "browser": "b" * 43,
        "session_cookie": "new",
        "auth_time": ASKED + timedelta(seconds=20),
    }
    args.update(kw)
    return SignInProofs(KEY).signed_in_since(marker, **args)  # type: ignore[arg-type]


def test_a_new_sign_in_after_the_demand_meets_it() -> None:
    marker = _demand()
    assert _met(marker)
    assert _met(marker, request=list(reversed(REQUEST)))  # order-free: round trips reorder


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"request": [*REQUEST[:2], ("resource", "https://a")]}, "another request"),
        ({"request": [("client_id", "c2"), *REQUEST[1:]]}, "another client"),
        ({"browser": "c" * 43}, "another browser"),
        ({"browser": None}, "no browser cookie"),
        ({"session_cookie": "old"}, "the same session: no new sign-in"),
        ({"auth_time": ASKED - timedelta(seconds=1)}, "signed in before the demand"),
        ({"now": ASKED + timedelta(seconds=PROOF_TTL_SECONDS + 1)}, "expired"),
        ({"now": ASKED - timedelta(seconds=61)}, "from the future, beyond clock skew"),
    ],
)
def test_a_marker_used_elsewhere_proves_nothing(change: dict[str, object], why: str) -> None:
    assert not _met(_demand(), **change), why


@pytest.mark.parametrize(
    "forged",
    ["", "0", "1", "0.-.x", "9" * 200, "1767323045.-.AAAA", "١٢.-.x", "a.b.c.d"],
)
def test_forged_markers_prove_nothing(forged: str) -> None:
    assert not _met(forged)


def test_a_tampered_time_or_session_tag_proves_nothing() -> None:
    issued, prior, mac = _demand().split(".")
    assert not _met(f"{int(issued) - 60}.{prior}.{mac}")
    assert not _met(f"{issued}.-.{mac}")
    assert not _met(_demand(), auth_time=ASKED - timedelta(seconds=1))


def test_a_marker_of_a_node_whose_clock_runs_ahead_is_accepted() -> None:
    assert _met(_demand(), now=ASKED - timedelta(seconds=30), auth_time=ASKED)


def test_a_signed_out_browser_needs_any_session_signed_in_after() -> None:
    marker = _demand(session_cookie=None)
    assert _met(marker, session_cookie="first")
    assert not _met(marker, session_cookie=None)


def test_a_key_of_another_deployment_proves_nothing() -> None:
    marker = SignInProofs(b"x" * 32).demand_sign_in(
        REQUEST, now=ASKED, browser="b" * 43, session_cookie="old"
    )
    assert not _met(marker)


def test_an_account_choice_is_bound_to_its_session_and_request() -> None:
    proofs = SignInProofs(KEY)
    choice = proofs.account_choice(REQUEST, now=ASKED, session_cookie="grace")
    later = ASKED + timedelta(seconds=10)
    assert proofs.account_chosen(choice, REQUEST, now=later, session_cookie="grace")
    assert not proofs.account_chosen(choice, REQUEST, now=later, session_cookie="ada")
    assert not proofs.account_chosen(choice, REQUEST, now=later, session_cookie=None)
    assert not proofs.account_chosen(choice, REQUEST[:3], now=later, session_cookie="grace")
    expired = ASKED + timedelta(seconds=PROOF_TTL_SECONDS + 1)
    assert not proofs.account_chosen(choice, REQUEST, now=expired, session_cookie="grace")
    assert not proofs.account_chosen("1", REQUEST, now=later, session_cookie="grace")


def test_markers_issued_before_the_shared_helpers_still_prove() -> None:
    # Made on 2026-12-03 by the module's own base64url and length-prefixed fields (now in
    # protocol/signed_fields.py): markers in flight across that upgrade must still verify.
    proofs, asked = SignInProofs(bytes(range(32))), datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    request = [("client_id", "c1"), ("response_type", "code"), ("scope", "openid")]
    demand = "1796259600.zWG7fFA3Xdx4kyQikZsL-y.DIAm_yqR9NGXLGLFxNz288NTuLUuPzidfZtOV8aNPS0"
    choice = "1796259600.zUU8a4rf0XGxFrGoMwylTtLGYgzAMxrpV8bkRqHXEYs"
    browser, later = "b" * 43, asked + timedelta(seconds=30)
    assert proofs.demand_sign_in(request, now=asked, browser=browser, session_cookie="sess-1") == (
        demand
    )
    assert proofs.signed_in_since(
        demand, request, now=later, browser=browser, session_cookie="sess-2", auth_time=later
    )
    assert proofs.account_choice(request, now=asked, session_cookie="sess-1") == choice
    assert proofs.account_chosen(choice, request, now=later, session_cookie="sess-1")
