"""Where the server may send a request of its own: rules against server-side request forgery.

The server fetches a URL chosen by a client in one place, a ``private_key_jwt`` client's
``jwks_uri`` (RFC 7591 section 2, RFC 7523 section 2.2, OpenID Connect Core 1.0 section 9). The
rules follow the OWASP Server-Side Request Forgery Prevention Cheat Sheet ("the application
can send requests to any external IP address or domain name"):

- :func:`check_fetch_url`, at registration and again before each fetch: an absolute ``https``
  URL (RFC 9110 section 4.2.2), ASCII only (IDNs in their A-label form, RFC 5890 section
  2.3.2.1), with a host, without userinfo (RFC 9110 section 4.2.4: a sender must not generate
  it) and without a fragment (RFC 3986 section 3.5); ``http`` only for a loopback host (RFC 8252
  section 8.3 names ``127.0.0.1``, ``[::1]``; ``localhost`` too) and only where the operator
  allows it (development).
- :func:`address_refusal`, on every address the host name resolves to and on the peer address
  of the socket actually connected: only globally reachable unicast addresses are allowed. The
  refused ranges are the IANA IPv4 and IPv6 Special-Purpose Address Registries' entries that are
  not globally reachable (RFC 6890, RFC 8190), named by kind: loopback (RFC 1122 section
  3.2.1.3, RFC 4291 section 2.5.3), private (RFC 1918, RFC 6598 shared address space, RFC 4193
  unique local), link-local (RFC 3927, incl. the cloud metadata address 169.254.169.254; RFC
  4291 section 2.5.6), multicast (RFC 5771, RFC 4291 section 2.7), unspecified (RFC 1122,
  RFC 4291 section 2.5.2) and reserved (everything else special or unassigned, incl. the
  documentation and benchmarking ranges). IPv6 is an allow list: global unicast 2000::/3 (RFC
  4291 section 2.4) less its special ranges. An IPv4 address carried inside IPv6 (IPv4-mapped,
  RFC 4291 section 2.5.5.2; the NAT64 well-known prefix, RFC 6052 section 2.1) is judged as the
  IPv4 address it reaches; 6to4 (RFC 3056, deprecated by RFC 7526) and Teredo (RFC 4380)
  tunnel to addresses that cannot be checked and are refused.

Pure: no DNS, no sockets. The caller resolves once, checks, connects to the checked address and
checks the connected peer, so that a second DNS answer (rebinding) never decides.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "DestinationPolicy",
    "DestinationRefused",
    "IPAddress",
    "Refusal",
    "address_refusal",
    "check_fetch_url",
    "is_loopback_host",
    "loggable_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Refusal = Literal["loopback", "private", "link-local", "multicast", "reserved", "unspecified"]

_MAX_URL_LEN = 2000  # the width of the clients.jwks_uri column


def _nets4(*cidrs: str) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(c) for c in cidrs)


def _nets6(*cidrs: str) -> tuple[ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.IPv6Network(c) for c in cidrs)


# IPv4, in the order they are checked (the first match names the refusal).
_IPV4_REFUSED: tuple[tuple[Refusal, tuple[ipaddress.IPv4Network, ...]], ...] = (
    ("unspecified", _nets4("0.0.0.0/32")),
    ("loopback", _nets4("127.0.0.0/8")),
    ("private", _nets4("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")),
    ("link-local", _nets4("169.254.0.0/16")),
    ("multicast", _nets4("224.0.0.0/4")),
    (
        "reserved",
        _nets4(
            "0.0.0.0/8",  # "this network" (RFC 791)
            "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
            "192.0.2.0/24",  # documentation (RFC 5737)
            "192.88.99.0/24",  # 6to4 relay anycast (RFC 7526)
            "198.18.0.0/15",  # benchmarking (RFC 2544)
            "198.51.100.0/24",  # documentation (RFC 5737)
            "203.0.113.0/24",  # documentation (RFC 5737)
            "240.0.0.0/4",  # reserved (RFC 1112), incl. limited broadcast
        ),
    ),
)

_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV6_REFUSED: tuple[tuple[Refusal, tuple[ipaddress.IPv6Network, ...]], ...] = (
    ("unspecified", _nets6("::/128")),
    ("loopback", _nets6("::1/128")),
    ("private", _nets6("fc00::/7")),
    ("link-local", _nets6("fe80::/10")),
    ("multicast", _nets6("ff00::/8")),
    (
        "reserved",
        _nets6(
            "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32 (RFC 4380)
            "2001:db8::/32",  # documentation (RFC 3849)
            "2002::/16",  # 6to4 (RFC 3056, RFC 7526)
            "3fff::/20",  # documentation (RFC 9637)
        ),
    ),
)


def address_refusal(address: IPAddress) -> Refusal | None:
    """Why a request must not go to ``address``; None for a globally reachable unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _IPV6_NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None:
            return address_refusal(embedded)
        for reason, nets6 in _IPV6_REFUSED:
            if any(address in net for net in nets6):
                return reason
        return None if address in _IPV6_GLOBAL_UNICAST else "reserved"
    for reason, nets4 in _IPV4_REFUSED:
        if any(address in net for net in nets4):
            return reason
    return None


class DestinationRefused(ValueError):
    """A URL or an address the server must not send a request to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """What an operator allows beyond the public internet (both off in production).

    ``allow_private`` lets requests reach every refused address kind (a JWKS served inside
    the operator's network, tests on 127.0.0.1); ``allow_http_loopback`` accepts ``http`` URLs
    whose host is a loopback name or address (nothing else ever goes over plain HTTP).
    """

    allow_private: bool = False
    allow_http_loopback: bool = False

    def refusal(self, address: IPAddress) -> Refusal | None:
        return None if self.allow_private else address_refusal(address)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and its subdomains, RFC 6761 section 6.3), 127.0.0.0/8 or ::1."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    literal = _literal(name)
    return literal is not None and address_refusal(literal) == "loopback"


def check_fetch_url(url: str, policy: DestinationPolicy) -> SplitResult:
    """Check a URL the server is asked to fetch; return its parts or raise DestinationRefused.

    A host given as an address literal is judged here already; a host name is judged when it
    is resolved (by the caller, at fetch time).
    """
    if not url or len(url) > _MAX_URL_LEN or not url.isascii():
        raise DestinationRefused("URL is empty, too long or not ASCII")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise DestinationRefused("URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError as exc:
        raise DestinationRefused("URL cannot be parsed") from exc
    if not parts.scheme:
        raise DestinationRefused("URL must be absolute with a host")
    if parts.scheme not in ("https", "http"):
        raise DestinationRefused("URL must use https")
    if "#" in url:
        raise DestinationRefused("URL must not have a fragment")
    if "@" in parts.netloc:
        raise DestinationRefused("URL must not carry userinfo")
    host = parts.hostname or ""
    if not host:
        raise DestinationRefused("URL must be absolute with a host")
    if parts.scheme == "http" and not (policy.allow_http_loopback and is_loopback_host(host)):
        raise DestinationRefused("URL must use https")
    literal = _literal(host)
    if literal is not None:
        refused = policy.refusal(literal)
        if refused is not None:
            raise DestinationRefused(f"URL names a {refused} address")
    return parts


def loggable_url(url: str) -> str:
    """The URL without userinfo, query and fragment, for logs (which may hold no secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return SplitResult(parts.scheme, netloc, parts.path, "", "").geturl()
