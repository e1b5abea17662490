"""Who the client really is behind a layer-4 proxy: the PROXY protocol, without I/O.

The HAProxy PROXY protocol is a header a layer-4 proxy writes before the
client's first byte (v1 is a text line, v2 a binary block); it works for the
netcat port and the HTTP port alike. HTTP forwarding headers (RFC 7239
``Forwarded``, ``X-Forwarded-For``) are ``core.forwarded``.

Both are claims made by whoever wrote the bytes, so the shell believes them only
from peers the operator listed as trusted proxies (``core.addresses``
answers that question). The spec forbids a receiver to guess
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
from dataclasses import dataclass

from ncpaste.core.addresses import MAX_PORT as _MAX_PORT
from ncpaste.core.addresses import MAX_PORT_DIGITS as _MAX_PORT_DIGITS
from ncpaste.core.addresses import normalized
from ncpaste.core.errors import BadRequest

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
    return normalized(address)


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
    return ProxyResult((normalized(ip), port), consumed)


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
