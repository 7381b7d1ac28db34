"""Who is the client? ``REMOTE_ADDR``, unless it is a trusted proxy: then walk ``X-Forwarded-For``
from the right, skipping trusted hops; the first untrusted address is the client.

Nothing is trusted by default, so a direct client's key can never be changed by the headers it
sends. Malformed, oversized or repeated headers only ever cut the walk short (towards the proxy we
trust), never past it. IPv6 clients are grouped by network (/64 by default): one host owns a /64.
"""

from __future__ import annotations

import functools
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


def client_address_key(
    remote_addr: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...], ipv6_prefix: int = 64
) -> str:
    """``client_key(client_ip(...))``: the common case (a plain IPv4 peer and plain IPv4 hops) in
    integer arithmetic, 4x faster; anything else (ports, brackets, IPv6, garbage) by the general path."""
    fast = _ipv4_only_key(remote_addr, forwarded_for, trusted)
    return fast if fast is not None else client_key(client_ip(remote_addr, forwarded_for, trusted), ipv6_prefix)


def _v4(text: str) -> int | None:
    try:  # accepts exactly what ipaddress accepts for IPv4, and only that (a Hypothesis test)
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=16)  # one entry per TRUSTED_PROXIES value in use
def _v4_networks(trusted: tuple[IPNetwork, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((int(n.network_address), int(n.netmask)) for n in trusted if n.version == 4)


def _ipv4_only_key(remote_addr: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str | None:
    """The key when the peer and every hop looked at are plain IPv4 text (then it is their canonical
    form); None when the general path must decide. Same walk as ``client_ip``."""
    peer_text = (remote_addr or "").strip()
    peer = _v4(peer_text)
    if peer is None:
        return None
    networks = _v4_networks(trusted)
    if not any(peer & mask == net for net, mask in networks) or not forwarded_for:
        return peer_text
    client = peer_text
    for raw in reversed(forwarded_for[-MAX_HEADER:].split(",")[-MAX_HOPS:]):
        text = raw.strip()
        hop = _v4(text)
        if hop is None:
            return None
        client = text
        if not any(hop & mask == net for net, mask in networks):
            break
    return client
