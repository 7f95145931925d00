"""protocol/totp.py against RFC 6238 appendix B, and the drift and replay rules of section 5.2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.totp import Totp, TotpAlgorithm, secret_from_bytes

# RFC 6238 appendix B: the seeds (ASCII) of each algorithm, and the 8-digit codes at each time.
SEEDS: dict[TotpAlgorithm, bytes] = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, {"SHA1": "94287082", "SHA256": "46119246", "SHA512": "90693936"}),
    (1111111109, {"SHA1": "07081804", "SHA256": "68084774", "SHA512": "25091201"}),
    (1111111111, {"SHA1": "14050471", "SHA256": "67062674", "SHA512": "99943326"}),
    (1234567890, {"SHA1": "89005924", "SHA256": "91819424", "SHA512": "93441116"}),
    (2000000000, {"SHA1": "69279037", "SHA256": "90698825", "SHA512": "38618901"}),
    (20000000000, {"SHA1": "65353130", "SHA256": "77737706", "SHA512": "47863826"}),
]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
@pytest.mark.parametrize(("seconds", "codes"), VECTORS)
def test_rfc_6238_appendix_b(algorithm: TotpAlgorithm, seconds: int, codes: dict[str, str]) -> None:
    totp = Totp(secret_from_bytes(SEEDS[algorithm]), digits=8, algorithm=algorithm)
    now = _at(seconds)
    assert totp.code_at_step(totp.step(now)) == codes[algorithm]
    assert totp.match_step(codes[algorithm], now, last_used_step=None) == totp.step(now)


SECRET = secret_from_bytes(b"\x07" * 20)
NOW = _at(1_800_000_015)  # 15 s into a step


def test_one_step_of_drift_either_side_and_no_more() -> None:
    totp = Totp(SECRET)
    step = totp.step(NOW)
    for offset in (-1, 0, 1):
        code = totp.code_at_step(step + offset)
        assert totp.match_step(code, NOW, last_used_step=None) == step + offset
    for offset in (-2, 2):
        assert totp.match_step(totp.code_at_step(step + offset), NOW, last_used_step=None) is None
    # A wider window when the deployment asks for one.
    assert totp.match_step(totp.code_at_step(step - 2), NOW, last_used_step=None, drift=2) == (
        step - 2
    )


def test_a_used_step_and_every_earlier_one_are_refused() -> None:
    """RFC 6238 section 5.2: the second attempt of the same OTP is not accepted."""
    totp = Totp(SECRET)
    step = totp.step(NOW)
    code = totp.code_at_step(step)
    assert totp.match_step(code, NOW, last_used_step=step - 1) == step
    assert totp.match_step(code, NOW, last_used_step=step) is None
    # The previous step's code, still inside the drift window, is refused once a later
    # step has been used: it would be an older code.
    assert totp.match_step(totp.code_at_step(step - 1), NOW, last_used_step=step) is None
    # The next step's code is still good after the current one was used.
    assert totp.match_step(totp.code_at_step(step + 1), NOW, last_used_step=step) == step + 1
    # Thirty seconds later the same code is simply stale.
    later = NOW + timedelta(seconds=60)
    assert totp.match_step(code, later, last_used_step=None) is None


@pytest.mark.parametrize(
    "typed", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "123 45", "+12345", "-12345"]
)
def test_what_is_not_six_ascii_digits_never_matches(typed: str) -> None:
    assert Totp(SECRET).match_step(typed, NOW, last_used_step=None) is None


def test_spaces_around_and_inside_a_typed_code_are_forgiven() -> None:
    totp = Totp(SECRET)
    code = totp.code_at_step(totp.step(NOW))
    assert totp.match_step(f" {code[:3]} {code[3:]} ", NOW, last_used_step=None) is not None


@given(st.text(max_size=40))
def test_any_input_is_refused_or_matched_never_raises(typed: str) -> None:
    result = Totp(SECRET).match_step(typed, NOW, last_used_step=None)
    assert result is None or isinstance(result, int)


def test_the_provisioning_uri_names_issuer_account_and_secret() -> None:
    uri = Totp(SECRET).provisioning_uri(account="carol@example.com", issuer="Ostiary")
    assert uri.startswith("otpauth://totp/Ostiary:carol%40example.com?")
    assert f"secret={SECRET}" in uri and "issuer=Ostiary" in uri


def test_parameters_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        Totp(SECRET, digits=5)
    with pytest.raises(ValueError):
        Totp(SECRET, period=0)
