"""ostiary.protocol.password_policy: NIST SP 800-63B 5.1.1.2 + zxcvbn."""

import pytest

from ostiary.protocol.password_policy import password_weakness


@pytest.mark.parametrize(
    "password",
    ["short", "elevenchars"],
)
def test_minimum_length_twelve(password: str) -> None:
    assert password_weakness(password) == "Use at least 12 characters."


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop123", "aaaaaaaaaaaaaaaa"])
def test_common_and_repetitive_passwords_are_refused_with_a_reason(password: str) -> None:
    reason = password_weakness(password)
    assert reason is not None
    assert reason.startswith("This password is too easy to guess")


def test_the_users_own_email_is_refused_though_strong_on_its_own() -> None:
    email = "jane.doe@example.com"
    assert password_weakness(email) is None
    assert password_weakness(email, [email, "jane.doe"]) is not None


@pytest.mark.parametrize(
    "password", ["correct horse battery staple 92", "vK8#pQ2!xZ7@mN4w", "ünïcødé pass phrase ok"]
)
def test_strong_passwords_including_spaces_and_unicode_are_accepted(password: str) -> None:
    assert password_weakness(password) is None


def test_overlong_and_control_characters_refused() -> None:
    assert password_weakness("x" * 300) == "Use at most 256 characters."
    assert password_weakness("correct horse\x00battery staple") == (
        "Control characters are not allowed."
    )
