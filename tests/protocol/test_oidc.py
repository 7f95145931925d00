"""OIDC Core 3.1.3.6 at_hash."""

import base64
import hashlib

from ostiary.protocol.oidc import (
    ACR_MFA,
    ACR_ONE_FACTOR,
    ACR_PHISHING_RESISTANT,
    ACR_PHISHING_RESISTANT_HARDWARE,
    ACR_VALUES_SUPPORTED,
    acr_answer,
    acr_for,
    acr_meets,
    left_half_hash,
)


def test_at_hash_es256_is_left_half_of_sha256() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.payload.sig"
    expected = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()[:16])
    assert left_half_hash(token, "ES256") == expected.rstrip(b"=").decode()


def test_at_hash_eddsa_uses_sha512() -> None:
    token = "abc"
    expected = base64.urlsafe_b64encode(hashlib.sha512(token.encode()).digest()[:32])
    assert left_half_hash(token, "EdDSA") == expected.rstrip(b"=").decode()


def test_oidc_core_example_value() -> None:
    # OpenID Connect Core 1.0 appendix A.3: at_hash of the example access token.
    assert left_half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == (
        "77QmUPtjPfzWtF2AnpK9RQ"
    )


def test_acr_is_the_class_of_the_methods_used() -> None:
    assert acr_for(["pwd"]) == acr_for(("pwd",)) == ACR_ONE_FACTOR
    assert ACR_ONE_FACTOR in ACR_VALUES_SUPPORTED
    # No class describes these (yet): no acr claim rather than a wrong one.
    assert acr_for([]) is None
    assert acr_for(["pwd", "otp"]) is None
    assert acr_for(["hwk"]) is None


def test_password_and_one_time_code_is_the_multi_factor_class() -> None:
    # RFC 8176 section 2: "otp" for the code, "mfa" since two factors were used.
    assert acr_for(["pwd", "otp", "mfa"]) == acr_for(["mfa", "pwd", "otp"]) == ACR_MFA
    assert ACR_MFA in ACR_VALUES_SUPPORTED
    assert ACR_MFA != ACR_ONE_FACTOR


def test_a_passkey_is_phishing_resistant_and_hardware_protected_when_device_bound() -> None:
    # OpenID EAP ACR values: "phr", and "phrh" when the key cannot leave the device (hwk).
    assert acr_for(["swk", "mfa"]) == acr_for(["pwd", "swk", "mfa"]) == ACR_PHISHING_RESISTANT
    assert acr_for(["hwk", "mfa"]) == ACR_PHISHING_RESISTANT_HARDWARE
    assert acr_for(["pwd", "otp", "hwk", "mfa"]) == ACR_PHISHING_RESISTANT_HARDWARE
    # A key without user verification or a second factor is not a class.
    assert acr_for(["swk"]) is None
    assert acr_for(["hwk"]) is None
    assert ACR_VALUES_SUPPORTED == ("urn:ostiary:acr:password", ACR_MFA, "phr", "phrh")


def test_a_stronger_class_meets_a_weaker_request_and_never_the_reverse() -> None:
    order = list(ACR_VALUES_SUPPORTED)
    for i, achieved in enumerate(order):
        for j, wanted in enumerate(order):
            assert acr_meets(achieved, wanted) is (i >= j), (achieved, wanted)
    assert not acr_meets(None, ACR_ONE_FACTOR)
    assert not acr_meets(ACR_PHISHING_RESISTANT_HARDWARE, "urn:example:unknown")


def test_the_answer_is_the_strongest_requested_value_met_never_an_unrequested_one() -> None:
    # OIDC Core 5.5.1.1: the acr returned matches one of the requested values.
    assert acr_answer(["pwd", "otp", "mfa"], [ACR_ONE_FACTOR]) == ACR_ONE_FACTOR
    assert acr_answer(["hwk", "mfa"], [ACR_ONE_FACTOR, ACR_MFA, "urn:x"]) == ACR_MFA
    assert acr_answer(["hwk", "mfa"], [ACR_PHISHING_RESISTANT]) == ACR_PHISHING_RESISTANT
    # Nothing requested is met (or nothing requested): the class achieved.
    assert acr_answer(["pwd"], [ACR_MFA]) == ACR_ONE_FACTOR
    assert acr_answer(["swk", "mfa"]) == ACR_PHISHING_RESISTANT
    assert acr_answer([], [ACR_ONE_FACTOR]) is None
