"""Who is the client? ``REMOTE_ADDR``, unless it is a trusted proxy: then walk ``X-Forwarded-For``
from the right, skipping trusted hops; the first untrusted address is the client.

Nothing is trusted by default, so a direct client's key can never be changed by the headers it
sends. Malformed, oversized or repeated headers only ever cut the walk short (towards the proxy we
trust), never past it. IPv6 clients are grouped by network (/64 by default): one host owns a /64.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

from resilience.exceptions import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HEADER = 4096  # characters of X-Forwarded-For considered (the rightmost ones)
MAX_HOPS = 32


def parse_networks(values: Iterable[str], path: str = 'RESILIENCE["TRUSTED_PROXIES"]') -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) of trusted proxies; a bad entry is a clear error naming it."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ConfigurationError(f"{path} must be a list of CIDRs, got {values!r}")
    networks = []
    for i, value in enumerate(values):
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(f"{path}[{i}] is not an IP network: {str(value)[:60]!r}") from None
    return tuple(networks)


def parse_ip(value: str) -> IPAddress | None:
    """An address from a header or REMOTE_ADDR: ports, brackets and zone ids removed; None if malformed."""
    text = value.strip().strip('"')
    if not text or len(text) > 64 or not text.isascii():
        return None
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:  # the common case, a plain IPv4 address: the C parser (as strict: four decimal octets,
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))  # no leading zeros) is 4x faster
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_ip(remote_addr: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's address, or None when even ``REMOTE_ADDR`` is unusable."""
    peer = parse_ip(remote_addr or "")
    if peer is None or not trusted or not is_trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = forwarded_for[-MAX_HEADER:].split(",")[-MAX_HOPS:]
    client = peer
    for raw in reversed(hops):
        hop = parse_ip(raw)
        if hop is None:
            break  # garbage to the left of a trusted hop: the last address we could trust stands
        client = hop
        if not is_trusted(hop, trusted):
            break
    return client


def client_key(address: IPAddress | None, ipv6_prefix: int = 64) -> str:
    """The rate-limit identity of an address: IPv4 as is, IPv6 as its /``ipv6_prefix`` network."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)
