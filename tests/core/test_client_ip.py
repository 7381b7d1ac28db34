"""Spoof-proof client addresses: the hostile-input table of issue 4."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.core.client_ip import client_address_key, client_ip, client_key, parse_ip, parse_networks
from resilience.exceptions import ConfigurationError

LB = parse_networks(["10.0.0.0/8", "fd00::/8"])
NONE = parse_networks([])


def key(remote, xff, trusted=LB, prefix=64):
    return client_key(client_ip(remote, xff, trusted), prefix)


@pytest.mark.parametrize(("remote", "xff", "expected"), [
    # direct clients: whatever they send, their own address is the key
    ("203.0.113.7", None, "203.0.113.7"),
    ("203.0.113.7", "1.2.3.4", "203.0.113.7"),
    ("203.0.113.7", "10.0.0.1, 1.2.3.4", "203.0.113.7"),
    ("203.0.113.7", "garbage" * 2000, "203.0.113.7"),
    ("203.0.113.7", ",,,,", "203.0.113.7"),
    # behind the trusted load balancer: the rightmost untrusted hop
    ("10.0.0.5", "198.51.100.9", "198.51.100.9"),
    ("10.0.0.5", "1.2.3.4, 198.51.100.9", "198.51.100.9"),  # the client's spoofed 1.2.3.4 is left of the real one
    ("10.0.0.5", "1.2.3.4, 198.51.100.9, 10.1.1.1", "198.51.100.9"),  # two trusted hops
    ("10.0.0.5", "198.51.100.9:51234", "198.51.100.9"),
    ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::/64"),
    ("10.0.0.5", "::ffff:198.51.100.9", "198.51.100.9"),
    ("10.0.0.5", "fe80::1%eth0", "fe80::/64"),
    ("10.0.0.5", "garbage, 198.51.100.9", "198.51.100.9"),
    ("10.0.0.5", "198.51.100.9, garbage", "10.0.0.5"),  # garbage right of a trusted hop: stop at the proxy
    ("10.0.0.5", "198.51.100.9," + " " * 10_000, "10.0.0.5"),
    ("10.0.0.5", "١٩٨.٥١.١٠٠.٩", "10.0.0.5"),  # non-ASCII digits are not an address
    ("10.0.0.5", "198.51.100.9\n203.0.113.1", "10.0.0.5"),
    ("10.0.0.5", "10.0.0.6, 10.0.0.7", "10.0.0.6"),  # only trusted hops: the leftmost we saw
    ("10.0.0.5", ", ".join(["10.9.9.9"] * 100) + ", 198.51.100.9", "198.51.100.9"),
    # IPv6 clients are grouped by /64: one host owns the whole /64
    ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::2", None, "2001:db8:1:2::/64"),
    ("2001:DB8:1:2::1", None, "2001:db8:1:2::/64"),
    # unusable REMOTE_ADDR
    ("", None, "unknown"),
    ("not-an-ip", "1.2.3.4", "unknown"),
])  # fmt: skip
def test_client_key(remote, xff, expected):
    assert key(remote, xff) == expected
    assert client_address_key(remote, xff, LB) == expected


HOPS = st.sampled_from([
    "10.0.0.1", "10.200.3.4", "198.51.100.9", "203.0.113.7", "1.2.3.4:80", "[2001:db8::1]:443", "fd00::5",
    "::ffff:10.0.0.9", '"198.51.100.9"', "garbage", "", " ", "010.0.0.1", "1.2.3", "١.٢.٣.٤", "10.0.0.1\n",
]) | st.ip_addresses(v=4).map(str)  # fmt: skip


@given(
    remote=HOPS | st.sampled_from([None, " 10.0.0.5 ", "2001:db8::1"]),
    hops=st.lists(HOPS, max_size=6),
    sep=st.sampled_from([",", ", ", " , "]),
    trusted=st.sampled_from([LB, NONE, parse_networks(["10.0.0.0/8"]), parse_networks(["0.0.0.0/0", "::/0"])]),
)
def test_the_ipv4_fast_path_gives_the_same_key_as_the_general_one(remote, hops, sep, trusted):
    xff = sep.join(hops) if hops else None
    assert client_address_key(remote, xff, trusted) == client_key(client_ip(remote, xff, trusted), 64)


def test_nothing_is_trusted_by_default():
    assert key("10.0.0.5", "198.51.100.9", trusted=NONE) == "10.0.0.5"


def test_ipv6_grouping_is_configurable():
    assert key("2001:db8:1:2:3::1", None, prefix=128) == "2001:db8:1:2:3::1/128"
    assert key("2001:db8:1:2:3::1", None, prefix=48) == "2001:db8:1::/48"


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["proxy.internal"], "10.0.0.0/8", [None]])
def test_bad_trusted_proxies_are_a_clear_error(bad):
    with pytest.raises(ConfigurationError, match='RESILIENCE\\["TRUSTED_PROXIES"\\]'):
        parse_networks(bad)


@given(st.text(alphabet="0123456789.", max_size=20) | st.ip_addresses(v=4).map(str))
def test_the_fast_ipv4_parser_accepts_exactly_what_ipaddress_accepts(text):
    """``parse_ip`` reads plain IPv4 with the C parser first: it must refuse and accept the same
    strings as ``ipaddress`` (no leading zeros, four decimal octets), and give the same address."""
    import ipaddress

    try:
        expected = ipaddress.ip_address(text)
    except ValueError:
        expected = None
    assert parse_ip(text) == expected
