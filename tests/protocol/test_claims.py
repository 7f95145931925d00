"""OpenID Connect Core 1.0 section 5.1 standard claims (validation) and section 5.5 (the
``claims`` request parameter)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostiary.protocol.claims import (
    EDITABLE_CLAIMS,
    ClaimError,
    ClaimsRequest,
    parse_claims_request,
    validate_claims,
)

ZONES = frozenset(available_timezones())


def _valid(**updates: object) -> dict[str, Any]:
    return validate_claims(updates, time_zones=ZONES)


def test_every_claim_normalized() -> None:
    got = _valid(
        given_name="  Grace ",
        family_name="Hopper",
        middle_name="Brewster",
        nickname="Amazing Grace",
        preferred_username="grace",
        picture="https://img.example/g.png",
        website="http://grace.example",
        gender="female",
        birthdate="1906-12-09",
        zoneinfo="America/New_York",
        locale="en-US",
        phone_number="+1 (415) 555-0123",
        phone_number_verified=True,
        address={"street_address": "1 Navy Way\r\nApt 2", "country": "US", "postal_code": ""},
    )
    assert got["given_name"] == "Grace"
    assert got["phone_number"] == "+14155550123"  # E.164 (section 5.1 RECOMMENDED)
    assert got["address"] == {"street_address": "1 Navy Way\nApt 2", "country": "US"}
    assert got["phone_number_verified"] is True
    assert set(got) == set(EDITABLE_CLAIMS)


def test_empty_values_clear() -> None:
    assert _valid(nickname="", address={"country": " "}, picture=None) == {
        "nickname": None,
        "address": None,
        "picture": None,
    }


@pytest.mark.parametrize("year_only", ["1906", "0000-12-09"])
def test_birthdate_year_only_and_year_omitted(year_only: str) -> None:
    assert _valid(birthdate=year_only)["birthdate"] == year_only


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        ("picture", "javascript:alert(1)", "http:// or https://"),
        ("website", "ftp://files.example", "http:// or https://"),
        ("website", "https://", "http:// or https://"),
        ("birthdate", "09/12/1906", "YYYY-MM-DD"),
        ("birthdate", "1906-02-30", "not a real date"),
        ("birthdate", "0000", "YYYY-MM-DD"),
        ("zoneinfo", "Mars/Olympus", "time zone"),
        ("zoneinfo", "../../etc/passwd", "time zone"),
        ("locale", "english!", "language tag"),
        ("phone_number", "0415 555 0123", "E.164"),
        ("phone_number", "+0123", "E.164"),
        ("phone_number_verified", "yes", "true or false"),
        ("given_name", "x" * 201, "longer than 200"),
        ("nickname", "bell\x07", "control characters"),
        ("gender", 3, "must be text"),
        ("address", "1 Navy Way", "object of address fields"),
        ("address", {"planet": "Earth"}, "Unknown address field"),
        ("address", {"locality": "a\nb"}, "control characters"),
        ("address", {"formatted": "x" * 501}, "longer than 500"),
        ("email", "a@b.example", "not an editable claim"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(
    claim: str, value: object, message: str
) -> None:
    with pytest.raises(ClaimError, match=message) as caught:
        _valid(**{claim: value})
    assert caught.value.claim.startswith(claim)


@settings(max_examples=300)
@given(
    st.sampled_from([*EDITABLE_CLAIMS, "other"]),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=300),
        st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=50), st.integers())),
    ),
)
def test_any_input_is_accepted_or_refused_with_a_claim_error(claim: str, value: object) -> None:
    message = ""
    try:
        got = _valid(**{claim: value})
    except ClaimError as exc:
        message = str(exc)
        got = {claim: None}
    assert message or set(got) == {claim}
    assert got[claim] is None or isinstance(got[claim], str | bool | dict)


# -- the claims parameter (section 5.5) --------------------------------------------------------


def test_claims_request_members_and_known_claims() -> None:
    request = parse_claims_request(
        json.dumps(
            {
                "userinfo": {"phone_number": {"essential": True}, "x-custom": None},
                "id_token": {
                    "email": None,
                    "acr": {"essential": True, "values": ["urn:a", "urn:b"]},
                },
            }
        )
    )
    assert request.user_claims("userinfo") == ("phone_number",)  # unknown ones ignored (5.5.1)
    assert request.user_claims("id_token") == ("email",)
    assert request.acr() == {"essential": True, "values": ["urn:a", "urn:b"]}
    assert ClaimsRequest.from_json(request.to_json()) == request
    assert ClaimsRequest.from_json(None) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"userinfo": []}', "claims.userinfo must be a JSON object"),
        ('{"id_token": {"email": 1}}', "null or a JSON object"),
        ('{"id_token": {"email": {"essential": "yes"}}}', "essential must be a boolean"),
        ('{"id_token": {"acr": {"values": "urn:a"}}}', "values must be an array"),
        ("[" * 5000 + "]" * 5000, "JSON"),
    ],
)
def test_malformed_claims_requests(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_claims_request(raw)


@settings(max_examples=300)
@given(
    st.text(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    ).map(json.dumps)
)
def test_any_claims_parameter_parses_or_raises_value_error(raw: str) -> None:
    try:
        request: ClaimsRequest | None = parse_claims_request(raw)
    except ValueError as exc:
        request = None
        message = str(exc)
    assert isinstance(request, ClaimsRequest) or message


@pytest.mark.parametrize(
    ("acr", "expected"),
    [
        ({"essential": True, "values": ["a", "b"]}, ("a", "b")),
        ({"essential": True, "value": "a"}, ("a",)),
        ({"values": ["a"]}, ()),  # voluntary (Core 5.5.1.1)
        ({"essential": False, "value": "a"}, ()),
        (None, ()),
    ],
)
def test_essential_acr_values(acr: dict[str, Any] | None, expected: tuple[str, ...]) -> None:
    request = parse_claims_request(json.dumps({"id_token": {"acr": acr}}))
    assert request.essential_acr() == expected
