"""Fetch destinations (OWASP SSRF Prevention Cheat Sheet): the address policy over the IANA
special-purpose registries (RFC 6890, RFC 8190) and the jwks_uri rules (RFC 7591 section 2,
RFC 9110 sections 4.2.2 and 4.2.4, RFC 3986 section 3.5)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.destinations import (
    DestinationPolicy,
    DestinationRefused,
    address_refusal,
    check_fetch_url,
    is_loopback_host,
    loggable_url,
)

ip = ipaddress.ip_address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # RFC 6598 shared address space (carrier-grade NAT)
        ("169.254.169.254", "link-local"),  # cloud instance metadata
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "reserved"),
        ("192.0.0.9", "reserved"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "private"),  # RFC 4193 unique local
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
        ("fec0::1", "reserved"),  # deprecated site-local
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:1", "reserved"),  # local-use NAT64 prefix
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible
        ("2002:7f00:1::1", "reserved"),  # 6to4 of 127.0.0.1
        ("2001::1", "reserved"),  # Teredo
        ("2001:db8::1", "reserved"),
        ("3fff::1", "reserved"),
        ("100::1", "reserved"),  # discard-only
    ],
)
def test_internal_addresses_are_refused_by_kind(address: str, reason: str) -> None:
    assert address_refusal(ip(address.split("%")[0])) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "172.32.0.1",  # just past 172.16.0.0/12
        "100.128.0.1",  # just past 100.64.0.0/10
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ip(address)) is None


_NAMED = [
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
]


@given(
    st.sampled_from(_NAMED).flatmap(
        lambda n: st.tuples(st.ip_addresses(network=n[0]), st.just(n[1]))
    )
)
def test_every_address_of_a_named_range_is_refused_as_that_kind(
    case: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str],
) -> None:
    address, reason = case
    assert address_refusal(address) == reason


@given(st.ip_addresses(v=4))
def test_ipv4_inside_ipv6_is_judged_as_the_ipv4_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    nat64 = ipaddress.IPv6Address(int(NAT64.network_address) | int(address))
    assert address_refusal(mapped) == address_refusal(address)
    assert address_refusal(nat64) == address_refusal(address)


def _reached(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@given(st.ip_addresses())
def test_allowed_addresses_are_global_by_the_standard_library(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    # An independent oracle: whatever we allow, Python's ipaddress also calls global unicast.
    if address_refusal(address) is not None:
        return
    reached = _reached(address)
    assert reached.is_global
    assert not (
        reached.is_private
        or reached.is_loopback
        or reached.is_link_local
        or reached.is_multicast
        or reached.is_reserved
        or reached.is_unspecified
    )


@given(st.ip_addresses(v=4))
def test_what_the_standard_library_calls_internal_is_refused(
    address: ipaddress.IPv4Address,
) -> None:
    internal = (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    if internal:
        assert address_refusal(address) is not None


@given(st.ip_addresses())
def test_allow_private_allows_every_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    assert DestinationPolicy(allow_private=True).refusal(address) is None
    assert DestinationPolicy().refusal(address) == address_refusal(address)


STRICT = DestinationPolicy()
DEV = DestinationPolicy(allow_private=True, allow_http_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.example/jwks.json",
        "https://keys.example:8443/a/b?v=2",
        "https://93.184.215.14/jwks",
        "https://[2606:4700:4700::1111]/jwks",
        "https://xn--bcher-kva.example/jwks",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert check_fetch_url(url, STRICT).scheme == "https"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("https://" + "a" * 2000 + ".example/", "too long"),
        ("/jwks.json", "absolute"),
        ("keys.example/jwks.json", "absolute"),
        ("https:///jwks.json", "absolute"),
        ("http://keys.example/jwks.json", "https"),
        ("ftp://keys.example/jwks.json", "https"),
        ("file:///etc/passwd", "https"),
        ("gopher://keys.example/", "https"),
        ("https://user:pw@keys.example/jwks", "userinfo"),
        ("https://keys.example@169.254.169.254/", "userinfo"),
        ("https://keys.example/jwks#frag", "fragment"),
        ("https://keys.example/jwks#", "fragment"),
        ("https://bücher.example/jwks", "ASCII"),
        ("https://keys.example/a b", "spaces"),
        ("https://keys.example\\@evil.example/", "backslash"),
        ("https://keys.example:99999/", "parsed"),
        ("https://127.0.0.1/jwks", "loopback"),
        ("https://[::1]/jwks", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.5/jwks", "private"),
        ("https://[::ffff:127.0.0.1]/jwks", "loopback"),
        ("https://0.0.0.0/jwks", "unspecified"),
        ("http://127.0.0.1:8080/jwks", "https"),  # http loopback needs the dev setting
    ],
)
def test_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(DestinationRefused) as info:
        check_fetch_url(url, STRICT)
    assert why.lower() in info.value.reason.lower()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost:8080/jwks",
        "https://10.0.0.5/jwks",
    ],
)
def test_the_dev_policy_allows_loopback_http_and_private_addresses(url: str) -> None:
    assert check_fetch_url(url, DEV).hostname


@pytest.mark.parametrize(
    "url",
    ["http://keys.example/jwks", "http://10.0.0.5/jwks", "http://localhost.evil.example/jwks"],
)
def test_http_is_only_ever_for_loopback_hosts(url: str) -> None:
    with pytest.raises(DestinationRefused, match="https"):
        check_fetch_url(url, DEV)


def test_http_loopback_alone_does_not_allow_the_loopback_address() -> None:
    policy = DestinationPolicy(allow_http_loopback=True)
    with pytest.raises(DestinationRefused, match="loopback"):
        check_fetch_url("http://127.0.0.1/jwks", policy)
    assert check_fetch_url("http://localhost/jwks", policy)  # judged when resolved


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost.example", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_logged_urls_lose_userinfo_query_and_fragment() -> None:
    logged = loggable_url("https://u:secret@keys.example:8443/jwks?token=abc#f")
    assert logged == "https://keys.example:8443/jwks"
    assert loggable_url("https://[::1]/k?x=1") == "https://[::1]/k"
    assert loggable_url("https://keys.example:bad/") == "<unparsable URL>"
