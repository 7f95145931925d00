"""CIDR allowlists: parsing and matching of IPv4 and IPv6 ranges.

- Notation: RFC 4632 section 3.1 (IPv4 prefixes, ``a.b.c.d/len``) and RFC 4291 section 2.3
  (IPv6 prefixes, ``addr/len``), parsed by the standard library's :mod:`ipaddress` with
  ``strict=True``: a prefix with host bits set (``10.0.0.1/24``) is refused and the network
  that was probably meant is suggested, rather than silently widened or narrowed.
- A bare address is a one-address range (``/32`` or ``/128``).
- Matching: an IPv4-mapped IPv6 address (RFC 4291 section 2.5.5.2, ``::ffff:a.b.c.d``, what a
  dual-stack socket reports for an IPv4 peer) is matched as the IPv4 address it carries.
- Given but empty, an allowlist would allow nothing: refused, since "no restriction" is said
  by not giving one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_RANGES",
    "CidrError",
    "Network",
    "address_allowed",
    "parse_address",
    "parse_cidr",
    "parse_cidrs",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_RANGES = 100
_MAX_TEXT = 64  # the longest IPv6 prefix with a zone-less address is 43 characters


class CidrError(ValueError):
    """A range that is not valid CIDR notation, with what is wrong in words."""


def parse_cidr(text: str) -> Network:
    """One range; :class:`CidrError` naming the problem otherwise."""
    value = text.strip()
    shown = repr(value[:_MAX_TEXT])
    if not value or len(value) > _MAX_TEXT:
        raise CidrError(f"{shown} is not an IP range (expected e.g. 10.0.0.0/8 or 2001:db8::/32)")
    address, slash, length = value.partition("/")
    try:
        host = ipaddress.ip_address(address)
    except ValueError:
        raise CidrError(
            f"{shown} is not an IP range (expected e.g. 10.0.0.0/8 or 2001:db8::/32)"
        ) from None
    if slash and (
        not (length.isascii() and length.isdigit())
        or len(length) > 3
        or int(length) > host.max_prefixlen
    ):
        raise CidrError(
            f"{shown}: the prefix length must be 0 to {host.max_prefixlen} "
            f"for an IPv{host.version} address"
        )
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            meant = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise CidrError(f"{shown} is not an IP range") from None
        raise CidrError(f"{value} has host bits set; did you mean {meant}?") from None


def parse_cidrs(texts: Iterable[str]) -> tuple[Network, ...]:
    """A given allowlist: at least one range, at most :data:`MAX_RANGES`, duplicates dropped,
    in the order given."""
    ranges: list[Network] = []
    for text in texts:
        network = parse_cidr(text)
        if network not in ranges:
            ranges.append(network)
        if len(ranges) > MAX_RANGES:
            raise CidrError(f"an allowlist holds at most {MAX_RANGES} ranges")
    if not ranges:
        raise CidrError("an IP allowlist, when given, needs at least one range")
    return tuple(ranges)


def parse_address(text: str) -> Address | None:
    """A client address as a peer or a caller names it (IPv6 scope ids dropped); None if it
    is not one. IPv4-mapped IPv6 addresses come back as IPv4."""
    value = text.strip()
    if not value or len(value) > _MAX_TEXT:
        return None
    value = value.partition("%")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_allowed(address: str, ranges: Sequence[Network]) -> bool:
    """Whether ``address`` lies in one of ``ranges`` (an unparsable address never does)."""
    parsed = parse_address(address)
    if parsed is None:
        return False
    return any(parsed.version == net.version and parsed in net for net in ranges)
