"""IP addresses and networks, one way for every part of ncpaste.

Allow and deny lists, trusted proxies and ``--metrics-allow`` all name
networks, and limits, access checks and the logs all name clients; each
reads them here:

- An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a dual-stack socket
  reports for an IPv4 peer) is the IPv4 address it stands for, and a network
  written in that form is the IPv4 network.
- A CIDR with host bits set (``192.0.2.7/24``) is refused, naming the network
  it probably meant: silently widening it would make a typo for a different
  prefix length allow or deny more than the operator wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# A TCP port is 1..65535: at most five digits when written.
MAX_PORT = 65535
MAX_PORT_DIGITS = 5
# A client's address echoed in an error is clipped to this many characters.
MAX_SHOWN_CHARS = 64


def unmap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address stands for; others as they are."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_address(text: str) -> IPAddress:
    """An address, unmapped. Raises ValueError naming (a clipped) ``text``."""
    if not isinstance(text, str):
        raise ValueError(f"not an IP address: {text!r}")
    try:
        return unmap(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"not an IP address: {text[:MAX_SHOWN_CHARS]!r}") from None


def normalized(address: IPAddress) -> str:
    """The canonical text of an address (what logs and limiter keys use)."""
    return str(unmap(address))


def parse_network(entry: str) -> IPNetwork:
    """A CIDR or a bare address as a network; IPv4-mapped IPv6 as IPv4.
    Raises ValueError naming the entry (and, for host bits, the network it
    probably meant)."""
    if not isinstance(entry, str):
        raise ValueError(f"bad address or CIDR {entry!r}")
    text = entry.strip()
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            widened = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"bad address or CIDR {entry!r}: use e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7"
            ) from None
        raise ValueError(f"bad CIDR {entry!r}: host bits are set; did you mean {widened}?") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_V4_MAPPED):
        network = ipaddress.IPv4Network((int(network.network_address) & 0xFFFF_FFFF, network.prefixlen - 96))
    return network


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``parse_network`` of each; the first bad entry raises."""
    return tuple(parse_network(entry) for entry in entries)


def in_networks(ip: str, networks: Iterable[IPNetwork]) -> bool:
    """Is ``ip`` inside any of ``networks``? An IPv4-mapped address is its
    IPv4 address (networks are unmapped when parsed). Anything that is not
    an IP address is in no network."""
    try:
        address = parse_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks if network.version == address.version)
