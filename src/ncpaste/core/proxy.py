"""Who the client really is when a proxy stands in front of us, without I/O.

A deployment can tell us the client's address in two ways:

* the HAProxy PROXY protocol, a header a layer-4 proxy writes before the
  client's first byte (v1 is a text line, v2 a binary block); it works for the
  netcat port and the HTTP port alike;
* HTTP forwarding headers written by a layer-7 proxy: RFC 7239 ``Forwarded``
  and the de facto ``X-Forwarded-For``.

Both are claims made by whoever wrote the bytes, so the shell believes them only
from peers the operator listed as trusted proxies (``parse_cidrs`` and
``in_networks`` answer that question). The spec forbids a receiver to guess
whether a header is present on a port open to anyone (section 2: "the receiver
MUST be configured to only receive the protocol ... and MUST not try to guess"),
because anyone could otherwise send ``PROXY TCP4 <any address>``; that policy
lives in the shell, this module only parses.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt (cited below
by section), RFC 7239 for ``Forwarded``.

Every address returned is normalized by ``ipaddress`` (lower-case, compressed
IPv6; IPv4-mapped IPv6 given as the IPv4 address), so the same client always
gets the same string whichever way it was reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ncpaste.core.errors import BadRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# -- PROXY protocol limits and constants ----------------------------------------

# Section 2.1: a v1 header starts with the five characters "PROXY" and exactly
# one space.
V1_PREFIX = b"PROXY "
# Section 2.1: the longest v1 line a receiver must support, CRLF included
# ("PROXY UNKNOWN" with two full IPv6 addresses and two 5-digit ports); a line
# with no CRLF within this many bytes is not a PROXY header.
MAX_V1_BYTES = 107

# Section 2.2: the 12-byte v2 signature, chosen so that it cannot start any
# valid text protocol (it contains a NUL and "QUIT\n").
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# Section 2.2: signature (12), version/command (1), family/transport (1) and a
# 16-bit big-endian length of what follows (2).
V2_FIXED_BYTES = 16
# Section 2.2: the length field is 16 bits, so this is the protocol's maximum.
MAX_V2_BYTES = V2_FIXED_BYTES + 65535
# Our practical cap on the bytes after the fixed part: the largest address
# block is 216 bytes (AF_UNIX, section 2.2) and real TLV sets (ALPN, authority,
# SSL, unique ID, cloud endpoint IDs; section 2.2.x) are a few hundred bytes.
# Refusing more keeps a trusted-but-broken proxy from making us buffer 64 KiB
# per connection before the first payload byte.
MAX_V2_PAYLOAD = 4096
# The most bytes a caller ever has to buffer to get an answer from
# ``parse_proxy_header``: a complete v2 header at our cap (v1 is shorter).
MAX_PROXY_HEADER_BYTES = V2_FIXED_BYTES + MAX_V2_PAYLOAD

# Section 2.1: the three protocol words of a v1 line.
_V1_TCP4 = b"TCP4"
_V1_TCP6 = b"TCP6"
_V1_UNKNOWN = b"UNKNOWN"
_V1_PROTOCOLS = (_V1_TCP4, _V1_TCP6, _V1_UNKNOWN)
# Section 2.1: a port is a decimal integer in [0..65535], at most 5 digits.
_MAX_PORT = 65535
_MAX_PORT_DIGITS = 5

# Section 2.2, 13th byte: the high nibble is the version, which "must always be
# sent as \x2" and the receiver "must only accept this value"; the low nibble is
# the command, LOCAL (0x0) or PROXY (0x1), anything else must be refused.
_V2_VERSION = 0x2
_V2_LOCAL = 0x0
_V2_PROXY = 0x1
# Section 2.2, 14th byte: address family (high nibble) and transport (low
# nibble). Only these combinations exist; "other values ... must be rejected
# as invalid by receivers".
_V2_UNSPEC = 0x00  # unknown / unsupported: like v1 UNKNOWN
_V2_TCP4 = 0x11
_V2_UDP4 = 0x12
_V2_TCP6 = 0x21
_V2_UDP6 = 0x22
_V2_UNIX_STREAM = 0x31
_V2_UNIX_DGRAM = 0x32
# Section 2.2: address block sizes, source and destination address then source
# and destination port (network byte order).
_V2_INET_BYTES = 4 + 4 + 2 + 2
_V2_INET6_BYTES = 16 + 16 + 2 + 2
# Section 2.2: each TLV is a type byte and a 16-bit big-endian value length.
_V2_TLV_HEAD_BYTES = 3

# -- HTTP forwarding header limits ----------------------------------------------

# A request passes through a handful of proxies; more entries than this are
# either a misconfiguration or an attempt to make us walk a long list.
MAX_FORWARDED_HOPS = 32
# A forwarding header line longer than this is not one a proxy chain of
# MAX_FORWARDED_HOPS hops wrote (32 bracketed IPv6 nodes with ports and a few
# parameters each fit easily); it is not parsed.
MAX_FORWARDED_VALUE_BYTES = 4096

_FORWARDED = b"forwarded"
_X_FORWARDED_FOR = b"x-forwarded-for"
# RFC 7239 section 6: "unknown" is a node a proxy could not identify.
_UNKNOWN_NODE = "unknown"
# RFC 7239 section 6.3: obfuscated node names and ports start with "_".
_OBFUSCATED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_DIGITS = frozenset("0123456789")


class ProxyHeaderError(BadRequest):
    """A PROXY protocol header that is malformed or that we do not accept.

    The connection cannot be used: we no longer know where the payload starts.
    Messages are fixed text and never echo the received bytes.
    """

    reason = "proxy_header"


@dataclass(frozen=True)
class ProxyResult:
    """A complete PROXY header: who the client is, and where the payload starts."""

    #: The real client (ip, port); None for LOCAL / UNKNOWN / AF_UNSPEC, where
    #: the spec says to use the connection's own peer address.
    source: tuple[str, int] | None
    #: Bytes of the header; everything after them is the client's payload.
    consumed: int


# -- PROXY protocol ---------------------------------------------------------------


def might_be_proxy_header(data: bytes) -> bool | None:
    """Could ``data`` be the start of a PROXY header (v1 or v2)?

    True once a whole signature (``V1_PREFIX`` or ``V2_SIGNATURE``) has
    arrived, False as soon as the bytes differ from both, None while ``data``
    is still a strict prefix of a signature (empty data included). The answer
    only says what the bytes look like; whether a header is allowed from this
    peer is the shell's decision.
    """
    head = bytes(data[: len(V2_SIGNATURE)])
    if head.startswith(V1_PREFIX) or head == V2_SIGNATURE:
        return True
    if V1_PREFIX.startswith(head) or V2_SIGNATURE.startswith(head):
        return None
    return False


def parse_proxy_header(data: bytes) -> ProxyResult | None:
    """Parse the PROXY header at the start of ``data`` (v1 or v2).

    Returns None while more bytes are needed, a ``ProxyResult`` once the header
    is complete (bytes past ``consumed`` are payload and are not looked at),
    and raises ``ProxyHeaderError`` as soon as the bytes cannot become a header
    we accept: they do not start with a signature, a v1 line has no CRLF within
    ``MAX_V1_BYTES`` (or has a bare LF), an address or port is malformed, the
    v2 version, command or family is not one the spec defines, the v2 length
    is beyond ``MAX_V2_PAYLOAD`` or its TLV framing does not add up, or the
    header describes a transport we do not serve (UDP and AF_UNIX: our
    listeners are TCP, so such a header comes from a misconfigured proxy).

    At most ``MAX_PROXY_HEADER_BYTES`` of ``data`` are examined, so callers may
    pass a large buffer.
    """
    head = bytes(data[:MAX_PROXY_HEADER_BYTES])
    looks_like = might_be_proxy_header(head)
    if looks_like is None:
        return None
    if looks_like is False:
        raise ProxyHeaderError("connection did not start with a PROXY protocol header")
    if head.startswith(V1_PREFIX):
        return _parse_v1(head)
    return _parse_v2(head)


def _parse_v1(head: bytes) -> ProxyResult | None:
    """Section 2.1: ``PROXY <proto> <src> <dst> <sport> <dport>\\r\\n``."""
    newline = head.find(b"\n", 0, MAX_V1_BYTES)
    if newline < 0:
        if len(head) >= MAX_V1_BYTES:
            raise ProxyHeaderError(f"PROXY v1 header without CRLF within {MAX_V1_BYTES} bytes")
        _check_v1_protocol_so_far(head[len(V1_PREFIX) :])
        return None
    if head[newline - 1] != ord("\r"):  # section 2.1: the line ends with CRLF
        raise ProxyHeaderError("PROXY v1 header line does not end with CRLF")
    end = newline - 1
    consumed = newline + 1
    line = head[len(V1_PREFIX) : end]
    protocol, _, rest = line.partition(b" ")
    if protocol == _V1_UNKNOWN:
        # Section 2.1: with UNKNOWN "the receiver must ignore anything presented
        # before the CRLF is found" and use the real connection endpoints.
        return ProxyResult(None, consumed)
    if protocol not in (_V1_TCP4, _V1_TCP6):
        raise ProxyHeaderError("PROXY v1 header with an unknown protocol (expected TCP4, TCP6 or UNKNOWN)")
    fields = rest.split(b" ")
    if len(fields) != 4:
        raise ProxyHeaderError("PROXY v1 header does not have exactly four fields after the protocol")
    version = 4 if protocol == _V1_TCP4 else 6
    source = _v1_address(fields[0], version)
    _v1_address(fields[1], version)
    source_port = _v1_port(fields[2])
    _v1_port(fields[3])
    return ProxyResult((source, source_port), consumed)


def _check_v1_protocol_so_far(after_prefix: bytes) -> None:
    """Fail early on an incomplete v1 line whose protocol word is already wrong."""
    word, space, _ = after_prefix.partition(b" ")
    if space or b"\r" in word:
        word = word.partition(b"\r")[0]
        if word not in _V1_PROTOCOLS:
            raise ProxyHeaderError("PROXY v1 header with an unknown protocol (expected TCP4, TCP6 or UNKNOWN)")
    elif not any(protocol.startswith(word) for protocol in _V1_PROTOCOLS):
        raise ProxyHeaderError("PROXY v1 header with an unknown protocol (expected TCP4, TCP6 or UNKNOWN)")


def _v1_address(text: bytes, version: int) -> str:
    """Section 2.1: an address of the family the protocol word names."""
    if not text.isascii() or b"%" in text:  # no zone IDs in a PROXY header
        raise ProxyHeaderError("PROXY v1 header with a malformed address")
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        raise ProxyHeaderError("PROXY v1 header with a malformed address") from None
    if address.version != version:
        raise ProxyHeaderError("PROXY v1 header address does not match its protocol (TCP4/TCP6)")
    return _normalized(address)


def _v1_port(text: bytes) -> int:
    """Section 2.1: decimal in [0..65535]; "heading zeroes are not permitted"."""
    if (
        not text
        or len(text) > _MAX_PORT_DIGITS
        or not text.isdigit()  # bytes.isdigit is ASCII-only
        or (len(text) > 1 and text.startswith(b"0"))
        or int(text) > _MAX_PORT
    ):
        raise ProxyHeaderError("PROXY v1 header with a malformed port")
    return int(text)


def _parse_v2(head: bytes) -> ProxyResult | None:
    """Section 2.2: signature, version/command, family/transport, length, block."""
    if len(head) < V2_FIXED_BYTES:
        return None
    signature_end = len(V2_SIGNATURE)
    version_command, family = head[signature_end], head[signature_end + 1]
    length = int.from_bytes(head[signature_end + 2 : V2_FIXED_BYTES], "big")
    if version_command >> 4 != _V2_VERSION:
        raise ProxyHeaderError("PROXY header with an unsupported version")
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError("PROXY v2 header with an unknown command")
    if length > MAX_V2_PAYLOAD:
        raise ProxyHeaderError(f"PROXY v2 header longer than {MAX_V2_PAYLOAD} bytes")
    address_bytes = 0
    if command == _V2_PROXY:
        address_bytes = _v2_address_bytes(family)
        if length < address_bytes:
            raise ProxyHeaderError("PROXY v2 header too short for its address family")
    consumed = V2_FIXED_BYTES + length
    if len(head) < consumed:
        return None
    if command == _V2_LOCAL:
        # Section 2.2: for LOCAL (health checks, the proxy's own connections)
        # the receiver "must use the real connection endpoints and discard the
        # protocol block including the family which is ignored".
        return ProxyResult(None, consumed)
    block = head[V2_FIXED_BYTES:consumed]
    _check_tlvs(block[address_bytes:])
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == _V2_TCP4:
        ip = ipaddress.IPv4Address(block[0:4])
        port = int.from_bytes(block[8:10], "big")
    elif family == _V2_TCP6:
        ip = ipaddress.IPv6Address(block[0:16])
        port = int.from_bytes(block[32:34], "big")
    else:
        # AF_UNSPEC: section 2.2 leaves the receiver "free to accept the
        # connection anyway and use the real endpoints addresses"; like v1
        # UNKNOWN, that is what we do.
        return ProxyResult(None, consumed)
    return ProxyResult((_normalized(ip), port), consumed)


def _v2_address_bytes(family: int) -> int:
    """The address block size for a PROXY command's family/transport byte."""
    if family == _V2_TCP4:
        return _V2_INET_BYTES
    if family == _V2_TCP6:
        return _V2_INET6_BYTES
    if family == _V2_UNSPEC:
        return 0
    if family in (_V2_UDP4, _V2_UDP6, _V2_UNIX_DGRAM):
        raise ProxyHeaderError("PROXY v2 header for a datagram transport on a TCP connection")
    if family == _V2_UNIX_STREAM:
        raise ProxyHeaderError("PROXY v2 header for a unix socket client (no address to use)")
    raise ProxyHeaderError("PROXY v2 header with an invalid address family or transport")


def _check_tlvs(tlvs: bytes) -> None:
    """Section 2.2: the rest of the block is type-length-value records.

    We read none of them (no ALPN, SSL or CRC32C handling: the address is all
    we need), but their framing must add up, or the length field lied.
    """
    position = 0
    while position < len(tlvs):
        if len(tlvs) - position < _V2_TLV_HEAD_BYTES:
            raise ProxyHeaderError("PROXY v2 header with a truncated TLV")
        value_length = int.from_bytes(tlvs[position + 1 : position + 3], "big")
        position += _V2_TLV_HEAD_BYTES + value_length
        if position > len(tlvs):
            raise ProxyHeaderError("PROXY v2 header with a truncated TLV")


# -- HTTP forwarding headers ------------------------------------------------------


def client_from_forwarded(
    peer_ip: str, headers: list[tuple[bytes, bytes]], trusted: Callable[[str], bool]
) -> str:
    """The real client IP of an HTTP request that may have come through proxies.

    Only a trusted peer's forwarding headers are read: from anyone else they
    are whatever the client chose to send, so the peer is the answer. From a
    trusted peer the hops are walked right to left (each proxy appends the
    address it received the request from), skipping trusted addresses; the
    first untrusted one is the client. If every hop is trusted the left-most
    one walked is the answer.

    ``X-Forwarded-For`` is preferred when both it and ``Forwarded`` (RFC
    7239) are present: nginx (``proxy_add_x_forwarded_for``) and HAProxy
    (``option forwardfor``) append to it and pass a client's own
    ``Forwarded`` through untouched, so preferring ``Forwarded`` would let a
    client name its own address. ``Forwarded`` is read only when no
    ``X-Forwarded-For`` came; a proxy that sets only ``Forwarded`` must strip
    a client's ``X-Forwarded-For`` (README, "Running in public").

    An entry that is not an IP address (garbage, RFC 7239 ``unknown`` or an
    obfuscated ``_name``, a hop without ``for=``, a header line longer than
    ``MAX_FORWARDED_VALUE_BYTES``) stops the walk and the last address found
    is the answer: nothing to its left can be tied to a trusted hop. At most
    ``MAX_FORWARDED_HOPS`` entries are walked.

    A ``peer_ip`` that is not an IP address (a unix socket) is returned as is.
    """
    try:
        peer = _normalized(ipaddress.ip_address(peer_ip))
    except ValueError:
        return peer_ip
    if not trusted(peer):
        return peer
    x_forwarded_for = [value for name, value in headers if bytes(name).lower() == _X_FORWARDED_FOR]
    if x_forwarded_for:
        hops = _hops_right_to_left(x_forwarded_for, _x_forwarded_for_entries, _x_forwarded_for_node)
    else:
        forwarded = [value for name, value in headers if bytes(name).lower() == _FORWARDED]
        hops = _hops_right_to_left(forwarded, _forwarded_elements, _forwarded_node)
    client = peer
    for walked, address in enumerate(hops):
        if walked >= MAX_FORWARDED_HOPS or address is None:
            break
        client = address
        if not trusted(client):
            break
    return client


def _hops_right_to_left(
    values: list[bytes],
    split: Callable[[str], list[str | None]],
    node: Callable[[str], str | None],
) -> Iterable[str | None]:
    """Addresses of the hops, right-most first; None for an entry that is not one.

    Several header lines are one comma-separated list in order (RFC 9110
    section 5.3), so the last line holds the right-most entries. A line that
    is too long becomes a single None where it stands rather than being
    dropped: dropping it would let entries to its left, which the client may
    have written, be read as if a trusted proxy had appended them.
    """
    for value in reversed(values):
        if len(value) > MAX_FORWARDED_VALUE_BYTES:
            yield None
            return
        for entry in reversed(split(bytes(value).decode("latin-1"))):
            yield None if entry is None else node(entry)


def _x_forwarded_for_entries(value: str) -> list[str | None]:
    """Comma-separated entries; empty list elements do not count (RFC 9110 5.6.1)."""
    return [entry for entry in (part.strip(" \t") for part in value.split(",")) if entry]


def _x_forwarded_for_node(entry: str) -> str | None:
    """An X-Forwarded-For entry: an IP, tolerating ``v4:port`` and ``[v6]:port``.

    Some proxies (cloud load balancers among them) append the port; the port
    is dropped.
    """
    if entry.startswith("["):
        return _bracketed_v6(entry)
    if entry.count(":") == 1:  # IPv4 with a port; bare IPv6 has two or more
        host, _, port = entry.partition(":")
        if not _is_port(port):
            return None
        return _ip_of_version(host, 4)
    return _ip_of_version(entry, None)


def _forwarded_elements(value: str) -> list[str | None]:
    """RFC 7239 section 4: the ``for=`` node of each forwarded-element.

    Elements are separated by commas and pairs by semicolons, both outside
    quoted strings. An element that is malformed, lacks ``for=`` or repeats it
    becomes None; an unterminated quote makes the last element None.
    """
    elements: list[str | None] = []
    for pairs, complete in _split_quoted(value):
        if not pairs or pairs == [""]:
            continue  # empty list element (RFC 9110 section 5.6.1)
        node: str | None = None
        valid = complete
        for pair in pairs:
            name, equals, raw = pair.strip(" \t").partition("=")
            if not equals or not name:
                valid = False
                break
            if name.lower() != "for":
                continue
            if node is not None:  # section 4: a parameter at most once per element
                valid = False
                break
            node = _unquote(raw)
            if node is None:
                valid = False
                break
        elements.append(node if valid else None)
    return elements


def _split_quoted(value: str) -> list[tuple[list[str], bool]]:
    """Split on commas, then semicolons, outside quoted strings.

    Returns each element's pairs (quotes kept, so ``_unquote`` can tell a
    quoted value) and whether the element ended outside a quoted string.
    """
    elements: list[tuple[list[str], bool]] = []
    pairs: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for char in value:
        if in_quotes:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
            current.append(char)
        elif char == ";":
            pairs.append("".join(current))
            current = []
        elif char == ",":
            pairs.append("".join(current))
            elements.append(([pair for pair in pairs if pair.strip(" \t")] or [""], True))
            pairs, current = [], []
        else:
            current.append(char)
    pairs.append("".join(current))
    elements.append(([pair for pair in pairs if pair.strip(" \t")] or [""], not in_quotes))
    return elements


def _unquote(raw: str) -> str | None:
    """A token or an RFC 9110 quoted-string (backslash escapes) -> its text."""
    if not raw.startswith('"'):
        # A token; we also tolerate an unquoted ``1.2.3.4:80`` or ``[v6]``,
        # which proxies configured by hand write, since the node syntax is
        # checked afterwards either way.
        return raw if raw and '"' not in raw and " " not in raw and "\t" not in raw else None
    if len(raw) < 2 or not raw.endswith('"'):
        return None
    inner = raw[1:-1]
    text: list[str] = []
    escaped = False
    for char in inner:
        if escaped:
            text.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None  # a quote in the middle: not one quoted-string
        else:
            text.append(char)
    return None if escaped else "".join(text)


def _forwarded_node(node: str) -> str | None:
    """RFC 7239 section 6: ``IPv4[:port]`` or ``"[IPv6][:port]"``.

    ``unknown`` and obfuscated ``_names`` identify no address, so they are None.
    """
    if node.lower() == _UNKNOWN_NODE or node.startswith("_"):
        return None
    if node.startswith("["):
        return _bracketed_v6(node)
    host, colon, port = node.partition(":")
    if colon and not _is_port(port):
        return None
    return _ip_of_version(host, 4)


def _bracketed_v6(text: str) -> str | None:
    """``[IPv6]`` or ``[IPv6]:port`` -> the normalized address."""
    host, bracket, rest = text[1:].partition("]")
    if not bracket:
        return None
    if rest and not (rest.startswith(":") and _is_port(rest[1:])):
        return None
    return _ip_of_version(host, 6)


def _is_port(text: str) -> bool:
    """RFC 7239 section 6: ``1*5DIGIT`` or an obfuscated ``_port``."""
    if text.startswith("_"):
        return len(text) > 1 and set(text[1:]) <= _OBFUSCATED_CHARS
    return 0 < len(text) <= _MAX_PORT_DIGITS and set(text) <= _DIGITS and int(text) <= _MAX_PORT


def _ip_of_version(text: str, version: int | None) -> str | None:
    """A header's address -> normalized string; None if not one (or zoned)."""
    if not text.isascii() or "%" in text:  # a zone ID means nothing to us
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if version is not None and address.version != version:
        return None
    return _normalized(address)


# -- trusted networks ---------------------------------------------------------------


def parse_cidrs(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse ``--trusted-proxy`` style entries: addresses or CIDR blocks.

    Host bits are masked (``10.0.0.1/8`` means ``10.0.0.0/8``), matching what
    the command line accepts. Raises ValueError naming the first bad entry.
    """
    networks: list[IPNetwork] = []
    for text in texts:
        entry = text.strip()
        try:
            if not entry:
                raise ValueError("empty")
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {text!r}") from None
    return tuple(networks)


def in_networks(ip: str, networks: Iterable[IPNetwork]) -> bool:
    """Is ``ip`` inside any of ``networks``?

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what a dual-stack
    socket reports for an IPv4 client) also matches IPv4 networks, and an IPv4
    address also matches networks written in the mapped form. Anything that is
    not an IP address is in no network.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    elif isinstance(address, ipaddress.IPv4Address):
        candidates.append(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed))
    return any(
        candidate in network
        for network in networks
        for candidate in candidates
        if candidate.version == network.version
    )


def _normalized(address: IPAddress) -> str:
    """The canonical text of an address; IPv4-mapped IPv6 becomes IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
