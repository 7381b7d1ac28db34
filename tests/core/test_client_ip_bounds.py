"""The client-address walk at its bounds: header length, hop count, address forms, proxy settings."""

import ipaddress

import pytest

from resilience.core.client_ip import MAX_HEADER, MAX_HOPS, client_ip, client_key, is_trusted, parse_ip, parse_networks
from resilience.exceptions import ConfigurationError

LB = parse_networks(["10.0.0.0/8"])


def walk(xff, remote="10.0.0.5", trusted=LB):
    return str(client_ip(remote, xff, trusted))


def padded_to_max_header(client):
    """``client`` then 31 trusted hops padded with spaces so the whole header is exactly MAX_HEADER long."""
    hops = [" " * 100 + "10.9.9.9"] * 31
    tail = "," + ",".join(hops)
    xff = " " * (MAX_HEADER - len(tail) - len(client)) + client + tail
    assert len(xff) == MAX_HEADER == 4096
    return xff


def test_trusted_proxies_as_a_plain_string_are_refused_naming_the_setting():
    with pytest.raises(ConfigurationError) as raised:
        parse_networks("10.0.0.0/8")
    assert str(raised.value) == """RESILIENCE["TRUSTED_PROXIES"] must be a list of CIDRs, got '10.0.0.0/8'"""


def test_trusted_proxies_that_are_not_a_list_at_all_are_refused():
    with pytest.raises(ConfigurationError, match=r"^RESILIENCE\[\"TRUSTED_PROXIES\"\] must be a list of CIDRs, got 10$"):
        parse_networks(10)  # type: ignore[arg-type]


def test_a_bad_entry_is_named_by_its_index_under_the_given_path():
    with pytest.raises(ConfigurationError) as raised:
        parse_networks(["10.0.0.0/8", "proxy.internal"], path="PROXIES")
    assert str(raised.value) == "PROXIES[1] is not an IP network: 'proxy.internal'"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__ is True


def test_entries_are_stripped_host_bits_allowed_and_any_iterable_accepted():
    networks = parse_networks(n for n in (" 10.0.0.1/8 ", "192.0.2.7", "fd00::/8"))
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_only_the_rightmost_max_header_characters_are_read():
    xff = padded_to_max_header("1.2.3.4")
    assert walk(xff) == "1.2.3.4"
    assert walk("9" + xff) == "1.2.3.4"  # the 4097th character from the right is cut off, not read as "91.2.3.4"


def test_at_most_max_hops_are_walked():
    assert MAX_HOPS == 32
    assert walk("198.51.100.9, " + ", ".join(["10.9.9.9"] * 31)) == "198.51.100.9"
    assert walk("198.51.100.9, " + ", ".join(["10.9.9.9"] * 32)) == "10.9.9.9"


def test_a_walk_without_a_forwarded_header_or_without_trust_is_the_peer():
    assert walk(None) == "10.0.0.5"
    assert walk("") == "10.0.0.5"
    assert walk("198.51.100.9", trusted=()) == "10.0.0.5"
    assert walk("198.51.100.9", remote="203.0.113.1") == "203.0.113.1"
    assert client_ip(None, "198.51.100.9", LB) is None


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("198.51.100.9", "198.51.100.9"),
        (' "198.51.100.9" ', "198.51.100.9"),
        ("198.51.100.9:8080", "198.51.100.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%" + "a" * 56, "fe80::1"),  # 64 characters: still read
        ("::ffff:198.51.100.9", "198.51.100.9"),
    ],
)
def test_address_forms_that_are_read(value, address):
    assert str(parse_ip(value)) == address


@pytest.mark.parametrize(
    "value",
    ["", "  ", '""', "fe80::1%" + "a" * 57, "[2001:db8::1", "[]", "198.51.100.9:80:1", "\u0661.2.3.4", "host:80", "1.2.3"],
)
def test_address_forms_that_are_none(value):
    assert parse_ip(value) is None


def test_an_ipv4_mapped_address_is_its_ipv4_address():
    assert parse_ip("::ffff:10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


def test_an_address_is_trusted_only_by_a_network_of_its_own_version():
    everything_v6 = parse_networks(["::/0"])
    assert is_trusted(ipaddress.IPv4Address("1.2.3.4"), everything_v6) is False
    assert is_trusted(ipaddress.IPv6Address("2001:db8::1"), everything_v6) is True
    assert is_trusted(ipaddress.IPv4Address("1.2.3.4"), parse_networks(["10.0.0.0/8"])) is False


def test_an_address_is_trusted_by_any_one_of_the_networks():
    networks = parse_networks(["10.0.0.0/8", "192.168.0.0/16"])
    assert is_trusted(ipaddress.IPv4Address("192.168.1.1"), networks) is True
    assert is_trusted(ipaddress.IPv4Address("10.1.1.1"), networks) is True


def test_client_key_of_no_address_is_unknown_and_ipv4_is_itself():
    assert client_key(None) == "unknown"
    assert client_key(ipaddress.IPv4Address("198.51.100.9"), 8) == "198.51.100.9"
    assert client_key(ipaddress.IPv6Address("2001:db8:1:2:3::1")) == "2001:db8:1:2::/64"
