"""web/deps.py: the raw-header reader the fast-lane endpoints share."""

from __future__ import annotations

from starlette.requests import Request

from ostiary.web.deps import first_headers


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


def test_the_first_value_of_each_name_in_one_pass() -> None:
    request = _request(
        [
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer a"),
            (b"authorization", b"Bearer b"),  # a repeat: the first one counts
            (b"x-other", b"ignored"),
            (b"ostiary-organization", b"caf\xe9"),  # latin-1, as Starlette decodes
        ]
    )
    names = (b"authorization", b"content-type", b"ostiary-organization", b"absent")
    assert first_headers(request, names) == [
        "Bearer a",
        "application/json",
        "café",
        None,
    ]
    assert first_headers(_request([]), (b"authorization",)) == [None]
