"""Redirect URI registration rules and matching.

- RFC 6749 section 3.1.2: absolute URI, no fragment.
- RFC 9700 section 2.1 / 4.1.3 and OAuth 2.1 section 2.3.1: exact string matching, no
  wildcards, no partial paths.
- RFC 8252 section 7.3 / 8.3: for native apps using the loopback interface, the port is
  chosen at run time, so ``http://127.0.0.1`` and ``http://[::1]`` match on any port (the
  path and query must still match exactly); ``localhost`` is NOT treated this way (section
  8.3 recommends against it).
- RFC 9700 section 4.1.3 / 2.6: ``http`` only for loopback; other schemes for native apps'
  private-use URIs (RFC 8252 section 7.1) must contain a period (reverse DNS).
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["RedirectUriError", "matches_registered", "validate_redirect_uri"]

_MAX_LEN = 2000


class RedirectUriError(ValueError):
    pass


def _is_loopback_http(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "::1")


def validate_redirect_uri(uri: str, *, public_native: bool = False) -> str:
    """Check a URI for registration; return it unchanged or raise :class:`RedirectUriError`."""
    if not uri or len(uri) > _MAX_LEN or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        raise RedirectUriError("redirect URI is empty, too long or contains spaces")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError as exc:
        raise RedirectUriError("redirect URI is not a valid URI") from exc
    if not parts.scheme or parts.fragment or "#" in uri:
        raise RedirectUriError("redirect URI must be absolute and have no fragment")
    if parts.scheme == "https":
        if not parts.hostname:
            raise RedirectUriError("https redirect URI needs a host")
        return uri
    if parts.scheme == "http":
        if (parts.hostname or "") in ("127.0.0.1", "::1", "localhost"):
            return uri
        raise RedirectUriError("http redirect URIs are allowed only for loopback addresses")
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise RedirectUriError(f"scheme {parts.scheme!r} is not allowed")
    if "." not in parts.scheme and not public_native:
        raise RedirectUriError("private-use URI schemes must be reverse-DNS names")
    return uri


def matches_registered(
    candidate: str, registered: tuple[str, ...] | list[str], *, loopback_any_port: bool = False
) -> bool:
    """Exact match; with ``loopback_any_port`` (native public clients), RFC 8252 section 7.3."""
    if candidate in registered:
        return True
    if not loopback_any_port or not _is_loopback_http(candidate):
        return False
    try:
        cand = urlsplit(candidate)
        if cand.port is None:
            return False
    except ValueError:
        return False
    for uri in registered:
        if not _is_loopback_http(uri):
            continue
        reg = urlsplit(uri)
        if (
            reg.hostname == cand.hostname
            and reg.path == cand.path
            and reg.query == cand.query
            and not cand.fragment
            and cand.username is None
            and cand.password is None
        ):
            return True
    return False
