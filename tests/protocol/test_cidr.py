"""protocol/cidr.py: CIDR allowlists (RFC 4632 section 3.1, RFC 4291 section 2.3): the
refusals named in issue 12, host bits with the network meant, matching of IPv4-mapped IPv6
addresses (RFC 4291 section 2.5.5.2), and properties checked against ``ipaddress`` itself."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.cidr import (
    MAX_RANGES,
    CidrError,
    address_allowed,
    parse_address,
    parse_cidr,
    parse_cidrs,
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1/33", "prefix length must be 0 to 32 for an IPv4 address"),
        ("::ffff:1.2.3.4/200", "prefix length must be 0 to 128 for an IPv6 address"),
        ("10.0.0.1/24", "10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?"),
        ("2001:db8::1/32", "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"),
        ("10.0.0.0/-1", "prefix length"),
        ("10.0.0.0/8/8", "prefix length"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/ 8", "prefix length"),
        ("10.0.0.0/0008", "prefix length"),
        ("256.0.0.0/8", "not an IP range"),
        ("example.com/8", "not an IP range"),
        ("", "not an IP range"),
        ("   ", "not an IP range"),
        ("1" * 1000, "not an IP range"),
        ("10.0.0.0\x00/8", "not an IP range"),
        ("\u0660.\u0660.\u0660.\u0660/8", "not an IP range"),  # Arabic-Indic digits
        ("10.0.0.0/\u0668", "prefix length"),
        ("10.0.0.0/\uff18", "prefix length"),  # fullwidth digit eight
    ],
)
def test_bad_ranges_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(CidrError, match=message.replace("?", r"\?").replace(".", r"\.")):
        parse_cidr(text)


def test_an_empty_allowlist_is_refused_and_duplicates_dropped() -> None:
    with pytest.raises(CidrError, match="at least one range"):
        parse_cidrs([])
    ranges = parse_cidrs(["10.0.0.0/8", "10.0.0.0/8", "192.0.2.1", "2001:db8::/32"])
    assert [str(r) for r in ranges] == ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]
    with pytest.raises(CidrError, match="at most"):
        parse_cidrs(f"10.0.{i // 256}.{i % 256}" for i in range(MAX_RANGES + 1))


def test_ipv4_mapped_ipv6_addresses_match_ipv4_ranges() -> None:
    ranges = parse_cidrs(["10.0.0.0/8"])
    assert address_allowed("::ffff:10.1.2.3", ranges)
    assert address_allowed("::FFFF:0a01:0203", ranges)
    assert not address_allowed("::ffff:11.1.2.3", ranges)
    assert not address_allowed("::10.1.2.3", ranges)  # IPv4-compatible, not mapped
    assert parse_address("::ffff:10.1.2.3") == ipaddress.IPv4Address("10.1.2.3")


def test_versions_never_cross_and_garbage_never_matches() -> None:
    ranges = parse_cidrs(["0.0.0.0/0"])
    assert address_allowed("203.0.113.9", ranges)
    assert not address_allowed("2001:db8::1", ranges)
    assert not address_allowed("", ranges)
    assert not address_allowed("not-an-ip", ranges)
    assert not address_allowed("10.0.0.1/32", ranges)
    six = parse_cidrs(["::/0"])
    assert address_allowed("fe80::1%eth0", six)
    assert not address_allowed("10.0.0.1", six)


ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(address=ipv4, prefix=st.integers(0, 32), probe=ipv4)
def test_ipv4_parsing_and_matching_agree_with_ipaddress(
    address: ipaddress.IPv4Address, prefix: int, probe: ipaddress.IPv4Address
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    text = f"{address}/{prefix}"
    if network.network_address == address:
        assert parse_cidr(text) == network
    else:
        with pytest.raises(CidrError, match=f"did you mean {network}"):
            parse_cidr(text)
    ranges = (network,)
    assert address_allowed(str(probe), ranges) == (probe in network)
    mapped = f"::ffff:{probe}"
    assert address_allowed(mapped, ranges) == (probe in network)


@given(address=ipv6, prefix=st.integers(0, 128), probe=ipv6)
def test_ipv6_parsing_and_matching_agree_with_ipaddress(
    address: ipaddress.IPv6Address, prefix: int, probe: ipaddress.IPv6Address
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    parsed = parse_cidr(str(network))
    assert parsed == network
    if probe.ipv4_mapped is None:
        assert address_allowed(str(probe), (parsed,)) == (probe in network)


@given(
    st.text(max_size=80)
    | st.builds(
        lambda a, b: f"{a}/{b}",
        st.sampled_from(["10.0.0.0", "::", "10.0.0.1"]),
        st.text(max_size=4),
    )
)
def test_any_text_parses_or_raises_cidr_error(text: str) -> None:
    try:
        network = parse_cidr(text)
    except CidrError:
        network = None
    if network is not None:
        assert ipaddress.ip_network(text.strip(), strict=True) == network
    assert address_allowed(text, parse_cidrs(["0.0.0.0/0", "::/0"])) == (
        parse_address(text) is not None
    )
