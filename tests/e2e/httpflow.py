"""Browserless HTTP flows: read the real HTML forms and submit them like a browser would.

The forms are parsed with :mod:`html.parser` (hidden fields such as ``csrf_token`` and
``next`` included), so the tests exercise exactly what the server renders.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode

import httpx

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "STRONG_PASSWORD",
    "Form",
    "SessionRow",
    "find_form",
    "login_error",
    "parse_forms",
    "session_rows",
    "sign_in",
    "submit",
]

STRONG_PASSWORD = "correct-horse-battery-staple-92"
SESSION_COOKIE = "ostiary_session"
CSRF_COOKIE = "ostiary_csrf"


@dataclass
class Form:
    action: str
    method: str
    id: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class SessionRow:
    sid: str
    current: bool


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.rows: list[SessionRow] = []
        self._open: Form | None = None
        self._in_error = False
        self.error_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(
                action=a.get("action", ""),
                method=a.get("method", "get").lower(),
                id=a.get("id"),
            )
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and a.get("name"):
            self._open.fields[a["name"]] = a.get("value", "")
        elif tag == "tr" and "data-sid" in a:
            classes = a.get("class", "").split()
            self.rows.append(SessionRow(sid=a["data-sid"], current="current" in classes))
        elif a.get("id") == "login-error":
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None
        elif tag == "p" and self._in_error:
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error_text += data


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def parse_forms(page: str) -> list[Form]:
    return _parse(page).forms


def find_form(page: str, action: str) -> Form:
    """The form posting to ``action``; fails the test with the page if there is none."""
    forms = parse_forms(page)
    for form in forms:
        if form.action == action:
            return form
    raise AssertionError(
        f"no form with action={action!r}; forms: {[f.action for f in forms]}\n{page[:2000]}"
    )


def session_rows(page: str) -> list[SessionRow]:
    """The rows of the account page's sessions table (``tr[data-sid]``)."""
    return _parse(page).rows


def login_error(page: str) -> str:
    """The text of the sign-in page's error paragraph (``#login-error``), or ''."""
    return html.unescape(_parse(page).error_text).strip()


def submit(client: httpx.Client, form: Form, **overrides: str | None) -> httpx.Response:
    """POST ``form`` with its own fields, ``overrides`` applied (a None value drops a field)."""
    assert form.method == "post", form
    data = dict(form.fields)
    for name, value in overrides.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    # Like a browser: urlencoded, with the content type even when no field is left.
    return client.post(
        form.action,
        content=urlencode(data).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def sign_in(
    client: httpx.Client,
    email: str,
    password: str,
    *,
    next_param: str | None = None,
    **overrides: str | None,
) -> httpx.Response:
    """Open /login (optionally with ``?next=``), fill in the sign-in form and submit it."""
    params = {"next": next_param} if next_param is not None else None
    page = client.get("/login", params=params)
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))
    form = find_form(page.text, "/login")
    assert form.id == "login-form"
    assert re.fullmatch(r"[0-9a-f]{64}", form.fields.get("csrf_token", "")), form.fields
    return submit(client, form, email=email, password=password, **overrides)
