"""Tier 1: PROXY protocol headers and HTTP forwarding headers, byte by byte.

Pure core tests: no sockets, no store, no clock. Headers are the bytes a real
proxy sends (HAProxy's v1 line, v2 blocks built with struct as the spec lays
them out), fed whole and one byte at a time.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncpaste.core.addresses import in_networks, parse_networks
from ncpaste.core.errors import BadRequest
from ncpaste.core.forwarded import MAX_FORWARDED_HOPS, MAX_FORWARDED_VALUE_BYTES, client_from_forwarded
from ncpaste.core.proxy import (
    MAX_PROXY_HEADER_BYTES,
    MAX_V1_BYTES,
    MAX_V2_BYTES,
    MAX_V2_PAYLOAD,
    V1_PREFIX,
    V2_SIGNATURE,
    ProxyHeaderError,
    ProxyResult,
    might_be_proxy_header,
    parse_proxy_header,
)

# Property tests run in milliseconds each; the deadline only adds flakiness
# on a loaded CI machine.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Section 2.2 byte values, spelled out here rather than imported so the tests
# check the module against the spec, not against itself.
PROXY_CMD = 0x21  # version 2, command PROXY
LOCAL_CMD = 0x20  # version 2, command LOCAL
AF_UNSPEC = 0x00
TCP4 = 0x11
UDP4 = 0x12
TCP6 = 0x21
UDP6 = 0x22
UNIX_STREAM = 0x31
UNIX_DGRAM = 0x32
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_NOOP = 0x04
PP2_TYPE_AWS = 0xEA  # AWS NLB's VPC endpoint ID

PAYLOAD = b"#!ncpaste expire=1h\nhello\r\n"

TRUSTED_NETWORKS = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


def trusted(ip: str) -> bool:
    return in_networks(ip, TRUSTED_NETWORKS)


def v2_header(
    command: int = PROXY_CMD, family: int = TCP4, block: bytes = b"", *, length: int | None = None
) -> bytes:
    """A v2 header as section 2.2 lays it out: signature, 2 bytes, length, block."""
    size = len(block) if length is None else length
    return V2_SIGNATURE + struct.pack("!BBH", command, family, size) + block


def inet_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    """Section 2.2 ``ipv4_addr`` / ``ipv6_addr``: addresses, then ports, big-endian."""
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    return source.packed + destination.packed + struct.pack("!HH", sport, dport)


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def feed_bytewise(data: bytes) -> ProxyResult:
    """Every strict prefix needs more bytes; the whole header gives a result."""
    for end in range(len(data)):
        assert parse_proxy_header(data[:end]) is None, f"answered after {end} of {len(data)} bytes"
    result = parse_proxy_header(data)
    assert result is not None
    return result


# -- PROXY v1 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "source"),
    [
        (b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 9999\r\n", ("192.0.2.10", 56324)),
        (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", ("255.255.255.255", 65535)),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ("0.0.0.0", 0)),
        (b"PROXY TCP6 2001:DB8::1 2001:db8::2 4711 443\r\n", ("2001:db8::1", 4711)),
        (b"PROXY TCP6 2001:0db8:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n", ("2001:db8::1", 1)),
        # A dual-stack proxy reports IPv4 clients in the mapped form.
        (b"PROXY TCP6 ::ffff:192.0.2.10 ::ffff:198.51.100.1 56324 80\r\n", ("192.0.2.10", 56324)),
        (b"PROXY TCP6 ::ffff:c000:20a ::1 56324 80\r\n", ("192.0.2.10", 56324)),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN 192.0.2.10 198.51.100.1 56324 9999\r\n", None),
        # Section 2.1: after UNKNOWN anything up to the CRLF is ignored.
        (b"PROXY UNKNOWN whatever the proxy \xff wants\r\n", None),
    ],
)
def test_v1_real_headers(header: bytes, source: tuple[str, int] | None) -> None:
    assert parse_proxy_header(header) == ProxyResult(source, len(header))
    assert parse_proxy_header(header + PAYLOAD) == ProxyResult(source, len(header))


def test_v1_byte_by_byte_then_payload_left_alone() -> None:
    header = b"PROXY TCP4 203.0.113.7 10.0.0.5 40000 9999\r\n"
    assert feed_bytewise(header) == ProxyResult(("203.0.113.7", 40000), len(header))
    # The payload may itself look like a PROXY header: it is never parsed.
    data = header + header + PAYLOAD
    result = parse_proxy_header(data)
    assert result is not None
    assert data[result.consumed :] == header + PAYLOAD


def test_v1_tcp6_byte_by_byte() -> None:
    header = b"PROXY TCP6 2001:db8::7 2001:db8::1 443 9999\r\n"
    assert feed_bytewise(header) == ProxyResult(("2001:db8::7", 443), len(header))


def test_v1_longest_line_the_spec_allows() -> None:
    full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    worst = f"PROXY UNKNOWN {full} {full} 65535 65535\r\n".encode()
    assert len(worst) == MAX_V1_BYTES == 107
    assert feed_bytewise(worst) == ProxyResult(None, MAX_V1_BYTES)
    tcp6 = f"PROXY TCP6 {full} {full} 65535 65535\r\n".encode()
    assert parse_proxy_header(tcp6) == ProxyResult((full, 65535), 104)


def test_v1_without_crlf_within_107_bytes_is_refused() -> None:
    line = b"PROXY UNKNOWN " + b"x" * 200
    assert parse_proxy_header(line[: MAX_V1_BYTES - 1]) is None
    with pytest.raises(ProxyHeaderError, match="107"):
        parse_proxy_header(line[:MAX_V1_BYTES])
    # One byte over: the CR is the 107th byte, the LF the 108th.
    too_long = b"PROXY UNKNOWN " + b"x" * (MAX_V1_BYTES - 15) + b"\r\n"
    assert len(too_long) == MAX_V1_BYTES + 1
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(too_long)


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 192.0.2.10 198.51.100.1 056324 9999\r\n",  # heading zero in a port
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 09999\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 9999\r\n",  # port out of range
        b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 9999\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 +80 9999\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 123456 9999\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 \xd9\xa3 9999\r\n",  # non-ASCII digit
        b"PROXY TCP4 192.0.2.010 198.51.100.1 56324 9999\r\n",  # octal-looking octet
        b"PROXY TCP4 192.0.2 198.51.100.1 56324 9999\r\n",
        b"PROXY TCP4 192.0.2.256 198.51.100.1 56324 9999\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 56324 9999\r\n",  # family mismatch
        b"PROXY TCP4 192.0.2.10 2001:db8::1 56324 9999\r\n",
        b"PROXY TCP6 192.0.2.10 2001:db8::1 56324 9999\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 9999\r\n",  # zone ID
        b"PROXY TCP6 2001:db8:::1 2001:db8::1 56324 9999\r\n",
        b"PROXY TCP4 192.0.2.10  198.51.100.1 56324 9999\r\n",  # two spaces
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 9999 \r\n",  # trailing space
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",  # missing field
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 9999 1\r\n",  # extra field
        b"PROXY TCP4\r\n",
        b"PROXY \r\n",
        b"PROXY tcp4 192.0.2.10 198.51.100.1 56324 9999\r\n",  # protocol words are upper case
        b"PROXY UDP4 192.0.2.10 198.51.100.1 56324 9999\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 9999\n",  # bare LF
        b"PROXY UNKNOWN\n\r\n",
        b"PROXY TCP4 192.0.2.10\t198.51.100.1 56324 9999\r\n",
    ],
)
def test_v1_malformed(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(header)


@pytest.mark.parametrize("start", [b"PROXY TCP5", b"PROXY HTTP", b"PROXY tcp", b"PROXY TCP4X", b"PROXY TCP\r"])
def test_v1_wrong_protocol_word_is_refused_before_the_line_ends(start: bytes) -> None:
    with pytest.raises(ProxyHeaderError, match="unknown protocol"):
        parse_proxy_header(start)


def test_proxy_header_error_is_a_safe_bad_request() -> None:
    with pytest.raises(ProxyHeaderError) as caught:
        parse_proxy_header(b"PROXY TCP4 <script>\xff\n 1 2\r\n")
    error = caught.value
    assert isinstance(error, BadRequest)
    assert error.http_status == 400
    assert error.reason == "proxy_header"
    assert "\n" not in error.message and "<script>" not in error.message


# -- PROXY v2 --------------------------------------------------------------------


def test_v2_tcp4_byte_by_byte_then_payload_left_alone() -> None:
    header = v2_header(PROXY_CMD, TCP4, inet_block("203.0.113.7", "10.0.0.5", 40000, 9999))
    assert len(header) == 16 + 12
    assert feed_bytewise(header) == ProxyResult(("203.0.113.7", 40000), 28)
    data = header + PAYLOAD
    result = parse_proxy_header(data)
    assert result == ProxyResult(("203.0.113.7", 40000), 28)
    assert data[result.consumed :] == PAYLOAD


def test_v2_tcp6() -> None:
    header = v2_header(PROXY_CMD, TCP6, inet_block("2001:db8::7", "2001:db8::1", 443, 9999))
    assert len(header) == 16 + 36
    assert feed_bytewise(header) == ProxyResult(("2001:db8::7", 443), 52)


def test_v2_tcp6_ipv4_mapped_source_is_reported_as_ipv4() -> None:
    header = v2_header(PROXY_CMD, TCP6, inet_block("::ffff:192.0.2.10", "::1", 5, 6))
    assert parse_proxy_header(header) == ProxyResult(("192.0.2.10", 5), len(header))


def test_v2_tlvs_are_skipped() -> None:
    tlvs = (
        tlv(PP2_TYPE_ALPN, b"h2")
        + tlv(PP2_TYPE_AUTHORITY, b"paste.example")
        + tlv(PP2_TYPE_AWS, b"\x01vpce-0123456789abcdef")
        + tlv(PP2_TYPE_NOOP, b"")
        + tlv(PP2_TYPE_NOOP, b"\0" * 7)
    )
    header = v2_header(PROXY_CMD, TCP4, inet_block("198.51.100.9", "10.0.0.5", 1234, 80) + tlvs)
    assert feed_bytewise(header) == ProxyResult(("198.51.100.9", 1234), len(header))
    result = parse_proxy_header(header + PAYLOAD)
    assert result is not None and (header + PAYLOAD)[result.consumed :] == PAYLOAD


def test_v2_local_uses_the_peer_and_ignores_the_block() -> None:
    # HAProxy's health checks: LOCAL, AF_UNSPEC, no block.
    health_check = v2_header(LOCAL_CMD, AF_UNSPEC)
    assert feed_bytewise(health_check) == ProxyResult(None, 16)
    # Section 2.2: with LOCAL the family (even AF_UNIX or an undefined one) and
    # the block are discarded, not checked.
    for family in (TCP4, UDP6, UNIX_STREAM, 0xFF):
        header = v2_header(LOCAL_CMD, family, b"\xab" * 20)
        assert parse_proxy_header(header + PAYLOAD) == ProxyResult(None, 36)


def test_v2_unspec_proxy_is_like_v1_unknown() -> None:
    header = v2_header(PROXY_CMD, AF_UNSPEC, tlv(PP2_TYPE_NOOP, b"x"))
    assert parse_proxy_header(header) == ProxyResult(None, len(header))


def test_v2_payload_up_to_the_cap() -> None:
    block = inet_block("192.0.2.1", "10.0.0.1", 1, 2)
    filler = tlv(PP2_TYPE_NOOP, b"\0" * (MAX_V2_PAYLOAD - len(block) - 3))
    header = v2_header(PROXY_CMD, TCP4, block + filler)
    assert len(header) == 16 + MAX_V2_PAYLOAD == MAX_PROXY_HEADER_BYTES
    assert parse_proxy_header(header[:-1]) is None
    assert parse_proxy_header(header) == ProxyResult(("192.0.2.1", 1), len(header))
    assert MAX_V2_BYTES == 16 + 65535


def test_v2_length_beyond_the_cap_is_refused_without_waiting_for_it() -> None:
    # The 16 fixed bytes are enough to refuse: we never buffer 64 KiB.
    fixed = v2_header(PROXY_CMD, TCP4, length=MAX_V2_PAYLOAD + 1)
    assert len(fixed) == 16
    with pytest.raises(ProxyHeaderError, match=str(MAX_V2_PAYLOAD)):
        parse_proxy_header(fixed)
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(v2_header(LOCAL_CMD, AF_UNSPEC, length=65535))


@pytest.mark.parametrize("end", [0, 1, 11, 12, 13, 15, 16, 20, 27])
def test_v2_truncated_needs_more(end: int) -> None:
    header = v2_header(PROXY_CMD, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2))
    assert parse_proxy_header(header[:end]) is None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (v2_header(0x11, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "version"),
        (v2_header(0x31, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "version"),
        (v2_header(0x01, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "version"),
        (v2_header(0x22, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "command"),
        (v2_header(0x2F, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "command"),
        # Our listeners are TCP: datagram and unix-socket headers are refused.
        (v2_header(PROXY_CMD, UDP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "datagram"),
        (v2_header(PROXY_CMD, UDP6, inet_block("2001:db8::1", "::1", 1, 2)), "datagram"),
        (v2_header(PROXY_CMD, UNIX_STREAM, b"\0" * 216), "unix"),
        (v2_header(PROXY_CMD, UNIX_DGRAM, b"\0" * 216), "datagram"),
        # Section 2.2: combinations the spec does not list are invalid.
        (v2_header(PROXY_CMD, 0x10, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "invalid address family"),
        (v2_header(PROXY_CMD, 0x01, b""), "invalid address family"),
        (v2_header(PROXY_CMD, 0x13, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "invalid address family"),
        (v2_header(PROXY_CMD, 0x41, b"\0" * 12), "invalid address family"),
        # The length must cover the address block of the family.
        (v2_header(PROXY_CMD, TCP4, b"\0" * 11), "too short"),
        (v2_header(PROXY_CMD, TCP6, inet_block("192.0.2.1", "10.0.0.1", 1, 2)), "too short"),
        # TLV framing that does not add up to the length.
        (v2_header(PROXY_CMD, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2) + b"\x04\x00"), "TLV"),
        (v2_header(PROXY_CMD, TCP4, inet_block("192.0.2.1", "10.0.0.1", 1, 2) + b"\x04\x00\x05ab"), "TLV"),
    ],
)
def test_v2_malformed(header: bytes, why: str) -> None:
    with pytest.raises(ProxyHeaderError, match=why):
        parse_proxy_header(header + PAYLOAD)


def test_v2_too_short_is_refused_before_the_block_arrives() -> None:
    with pytest.raises(ProxyHeaderError, match="too short"):
        parse_proxy_header(v2_header(PROXY_CMD, TCP6, length=12))


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"hello world\n", b"PROXY\r\n", b"\r\n\r\nQUIT\n", b"\x00"],
)
def test_not_a_proxy_header_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError, match="did not start with a PROXY"):
        parse_proxy_header(data)


# -- might_be_proxy_header --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", None),
        (b"P", None),
        (b"PROX", None),
        (b"PROXY", None),
        (b"PROXY ", True),
        (b"PROXY TCP4 1.2.3.4", True),
        (b"PROXY UNKNOWN\r\nrest", True),
        (b"\r", None),
        (b"\r\n\r\n", None),
        (V2_SIGNATURE[:-1], None),
        (V2_SIGNATURE, True),
        (V2_SIGNATURE + b"\x21\x11", True),
        (b"GET / HTTP/1.1\r\n", False),
        (b"POST /", False),
        (b"hello", False),
        (b"#!ncpaste expire=1h\n", False),
        (b"PROXY\n", False),
        (b"PROXYTCP4", False),
        (b"proxy ", False),
        (b"\r\n\r\nfoo", False),
        (b"\r\n\r\n\x00\r\nQUIT\r", False),
        (b"\n", False),
    ],
)
def test_might_be_proxy_header(data: bytes, expected: bool | None) -> None:
    assert might_be_proxy_header(data) is expected
    assert might_be_proxy_header(bytearray(data)) is expected


@PROPERTY
@given(st.binary(max_size=40))
def test_might_be_agrees_with_parse(data: bytes) -> None:
    """False means parse refuses; None means parse waits for more bytes."""
    looks_like = might_be_proxy_header(data)
    if looks_like is False:
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(data)
    elif looks_like is None:
        assert parse_proxy_header(data) is None


# -- client_from_forwarded -------------------------------------------------------


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", value.encode()) for value in values]


def fwd(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"forwarded", value.encode()) for value in values]


def test_untrusted_peer_headers_are_ignored() -> None:
    """A client talking to us directly cannot name another address."""
    spoof = xff("10.0.0.1, 198.51.100.66") + fwd("for=198.51.100.66")
    assert client_from_forwarded("203.0.113.5", spoof, trusted) == "203.0.113.5"
    assert client_from_forwarded("2001:db8::5", spoof, trusted) == "2001:db8::5"


def test_untrusted_peer_does_not_even_consult_headers() -> None:
    calls: list[str] = []

    def record(ip: str) -> bool:
        calls.append(ip)
        return False

    assert client_from_forwarded("::ffff:203.0.113.5", xff("1.2.3.4"), record) == "203.0.113.5"
    assert calls == ["203.0.113.5"]  # trusted() sees normalized addresses


def test_trusted_peer_without_headers_is_the_client() -> None:
    assert client_from_forwarded("10.0.0.1", [(b"host", b"x")], trusted) == "10.0.0.1"


def test_xff_chain_skips_trusted_proxies_from_the_right() -> None:
    # spoofed: what the client wrote; real: what our first proxy saw;
    # proxy2: a second trusted proxy between the first one and us.
    headers = xff("192.0.2.66, 203.0.113.7, 10.0.0.2")
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "203.0.113.7"


def test_xff_several_lines_are_one_list() -> None:
    headers = xff("192.0.2.66", "203.0.113.7, 10.0.0.3", "10.0.0.2")
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "203.0.113.7"


def test_xff_all_trusted_gives_the_left_most() -> None:
    assert client_from_forwarded("10.0.0.1", xff("10.0.0.9, 10.0.0.2"), trusted) == "10.0.0.9"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7:5555", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("2001:DB8:0::7", "2001:db8::7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7 ,, 10.0.0.2 ", "203.0.113.7"),  # OWS and empty elements
    ],
)
def test_xff_entry_forms(value: str, expected: str) -> None:
    assert client_from_forwarded("10.0.0.1", xff(value), trusted) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Garbage stops the walk: the last address found is the answer.
        ("203.0.113.7, garbage, 10.0.0.2", "10.0.0.2"),
        ("203.0.113.7, unknown", "10.0.0.1"),
        ("203.0.113.7, 10.0.0.256", "10.0.0.1"),
        ("203.0.113.7, 010.0.0.2", "10.0.0.1"),
        ("203.0.113.7, fe80::1%eth0", "10.0.0.1"),
        ("203.0.113.7, 203.0.113.8:99999", "10.0.0.1"),
        ("203.0.113.7, [2001:db8::7", "10.0.0.1"),
        ("203.0.113.7, 1.2.3.4 5.6.7.8", "10.0.0.1"),
        ("203.0.113.7, \u0661.2.3.4", "10.0.0.1"),
    ],
)
def test_xff_invalid_entry_stops_the_walk(value: str, expected: str) -> None:
    headers = [(b"x-forwarded-for", value.encode("utf-8"))]
    assert client_from_forwarded("10.0.0.1", headers, trusted) == expected


def test_forwarded_quoted_ipv6_with_port() -> None:
    headers = fwd('for="[2001:db8::1]:4711";proto=https;by=10.0.0.1')
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "2001:db8::1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),  # RFC 7239 examples
        ('for=192.0.2.43, for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ('For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for=192.0.2.43, for="[2001:db8:ffff::17]"', "192.0.2.43"),  # trusted hop skipped
        ('for="192.0.2.43:47011"', "192.0.2.43"),
        ('for="\\192.0.2.43"', "192.0.2.43"),  # quoted-pair
        ("for=192.0.2.43;;proto=https", "192.0.2.43"),  # empty pair
        ("for=192.0.2.43,,for=10.0.0.2", "192.0.2.43"),  # empty element
        ('FOR=192.0.2.43 , for="[::ffff:10.0.0.2]"', "192.0.2.43"),
        ("for=[2001:db8::9]:80", "2001:db8::9"),  # unquoted brackets tolerated
        ('proto="a,b;c", for=192.0.2.43;proto="x,y"', "192.0.2.43"),  # delimiters in quotes
    ],
)
def test_forwarded_forms(value: str, expected: str) -> None:
    assert client_from_forwarded("10.0.0.1", fwd(value), trusted) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 7239 section 6: unknown and obfuscated nodes name no address.
        ("for=192.0.2.43, for=unknown", "10.0.0.1"),
        ('for=192.0.2.43, for="unknown:80"', "10.0.0.1"),
        ("for=192.0.2.43, for=_hidden, for=10.0.0.2", "10.0.0.2"),
        ('for=192.0.2.43, for="_SEVKISEK"', "10.0.0.1"),
        ('for="[2001:db8::1]:_port", for=garbage', "10.0.0.1"),
        # Garbage, in the many shapes it comes in.
        ("for=192.0.2.43, proto=https", "10.0.0.1"),  # a hop without for=
        ("for=192.0.2.43;for=198.51.100.1", "10.0.0.1"),  # for= twice in one hop
        ('for="192.0.2.43', "10.0.0.1"),  # unterminated quote
        ('for="192.0.2.43"x', "10.0.0.1"),
        ('for="192.0.2"."43"', "10.0.0.1"),
        ("for=", "10.0.0.1"),
        ("for", "10.0.0.1"),
        ("=192.0.2.43", "10.0.0.1"),
        ("for= 192.0.2.43", "10.0.0.1"),
        ("for=2001:db8::1", "10.0.0.1"),  # IPv6 must be bracketed
        ('for="[192.0.2.43]"', "10.0.0.1"),  # brackets are for IPv6 only
        ('for="[2001:db8::1]:99999"', "10.0.0.1"),
        ('for="[2001:db8::1]x"', "10.0.0.1"),
        ("for=192.0.2.43:", "10.0.0.1"),
        ('for="[fe80::1%eth0]"', "10.0.0.1"),
        ("\x00\xff;;,,\"", "10.0.0.1"),
    ],
)
def test_forwarded_invalid_or_unknown_stops_the_walk(value: str, expected: str) -> None:
    headers = [(b"forwarded", value.encode("latin-1"))]
    assert client_from_forwarded("10.0.0.1", headers, trusted) == expected


def test_x_forwarded_for_is_preferred_over_forwarded() -> None:
    """nginx and HAProxy append to X-Forwarded-For and pass a client's own
    Forwarded through: believing Forwarded first would let the client choose."""
    headers = xff("198.51.100.1") + fwd("for=203.0.113.7")
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "198.51.100.1"
    headers = xff("198.51.100.1") + fwd("for=unknown")
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "198.51.100.1"
    # Forwarded alone is read.
    assert client_from_forwarded("10.0.0.1", fwd("for=203.0.113.7"), trusted) == "203.0.113.7"


def test_header_names_are_case_insensitive() -> None:
    headers = [(b"X-Forwarded-For", b"203.0.113.7")]
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "203.0.113.7"
    headers = [(b"FORWARDED", b"for=203.0.113.8")]
    assert client_from_forwarded("10.0.0.1", headers, trusted) == "203.0.113.8"


def test_oversized_line_is_not_parsed_and_stops_the_walk_where_it_stands() -> None:
    huge = "203.0.113.66, " * (MAX_FORWARDED_VALUE_BYTES // 14) + "203.0.113.7"
    assert len(huge) > MAX_FORWARDED_VALUE_BYTES
    # The right-most line is too long: nothing in it is believed.
    assert client_from_forwarded("10.0.0.1", xff("198.51.100.1", huge), trusted) == "10.0.0.1"
    # A too-long line further left is only reached after the lines to its right.
    assert client_from_forwarded("10.0.0.1", xff(huge, "203.0.113.9"), trusted) == "203.0.113.9"
    assert client_from_forwarded("10.0.0.1", xff(huge, "10.0.0.2"), trusted) == "10.0.0.2"
    exactly = ("10.0.0.2, " * 500)[: MAX_FORWARDED_VALUE_BYTES - 11] + ",192.0.2.1"
    assert len(exactly) == MAX_FORWARDED_VALUE_BYTES - 1
    assert client_from_forwarded("10.0.0.1", xff(exactly), trusted) == "192.0.2.1"


def test_walk_is_bounded_by_max_hops() -> None:
    proxies = [f"10.0.{index // 250}.{index % 250 + 1}" for index in range(MAX_FORWARDED_HOPS + 5)]
    value = ", ".join(["203.0.113.7", *proxies])
    # The untrusted client sits beyond the bound: the walk stops at the 32nd hop.
    assert client_from_forwarded("10.0.0.1", xff(value), trusted) == proxies[-MAX_FORWARDED_HOPS]
    within = ", ".join(["203.0.113.7", *proxies[: MAX_FORWARDED_HOPS - 1]])
    assert client_from_forwarded("10.0.0.1", xff(within), trusted) == "203.0.113.7"


def test_peer_forms() -> None:
    # A dual-stack socket reports an IPv4 proxy in the mapped form.
    assert client_from_forwarded("::ffff:10.0.0.1", xff("203.0.113.7"), trusted) == "203.0.113.7"
    assert client_from_forwarded("::ffff:203.0.113.5", [], trusted) == "203.0.113.5"
    # Not an IP at all (a unix socket): returned as is, headers never read.
    assert client_from_forwarded("", xff("203.0.113.7"), lambda ip: True) == ""


# -- parse_networks and in_networks ---------------------------------------------------


def test_parse_networks() -> None:
    networks = parse_networks(["10.0.0.0/8", " 192.0.2.1 ", "2001:db8::/32", "::ffff:10.1.0.0/112", "::1"])
    assert [str(network) for network in networks] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "2001:db8::/32",
        "10.1.0.0/16",  # IPv4-mapped: the IPv4 network
        "::1/128",
    ]
    assert parse_networks([]) == ()


def test_a_cidr_with_host_bits_is_refused_naming_what_it_probably_meant() -> None:
    # One policy for every list (allow, deny, trusted proxies, metrics): a
    # typo for another prefix length must not silently widen a list.
    with pytest.raises(ValueError) as caught:
        parse_networks(["10.1.2.3/16"])
    assert str(caught.value) == "bad CIDR '10.1.2.3/16': host bits are set; did you mean 10.1.0.0/16?"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "", "  ", "10.0.0.0/8/8", "2001:db8::/129", "010.0.0.0/8"])
def test_parse_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="bad address or CIDR") as caught:
        parse_networks(["10.0.0.0/8", bad, "192.0.2.0/24"])
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped: matched as IPv4
        ("::ffff:11.0.0.1", False),
        ("2001:db8:ffff::1", True),
        ("2001:db8:fffe::1", False),
        ("::1", False),
        ("not-an-ip", False),
        ("", False),
    ],
)
def test_in_networks(ip: str, expected: bool) -> None:
    assert in_networks(ip, TRUSTED_NETWORKS) is expected


def test_in_networks_mapped_networks_match_ipv4_clients() -> None:
    mapped = parse_networks(["::ffff:192.0.2.0/120"])
    assert in_networks("192.0.2.77", mapped)
    assert in_networks("::ffff:192.0.2.77", mapped)
    assert not in_networks("192.0.3.1", mapped)
    assert not in_networks("192.0.2.1", ())


# -- properties ---------------------------------------------------------------------

ports = st.integers(min_value=0, max_value=65535)
ipv4s = st.ip_addresses(v=4)
ipv6s = st.ip_addresses(v=6)


def expected_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def assert_valid_result(result: ProxyResult | None, data: bytes) -> None:
    if result is None:
        return
    assert 0 < result.consumed <= min(len(data), MAX_PROXY_HEADER_BYTES)
    if result.source is not None:
        ip, port = result.source
        assert str(ipaddress.ip_address(ip)) == ip
        assert 0 <= port <= 65535


proxy_like_bytes = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=120).map(lambda rest: V1_PREFIX + rest),
    st.builds(
        lambda words, rest: V1_PREFIX + words + rest,
        st.sampled_from([b"TCP4 ", b"TCP6 ", b"UNKNOWN", b"UNKNOWN "]),
        st.binary(max_size=100),
    ),
    st.builds(
        lambda command, family, length, rest: v2_header(command, family, rest, length=length),
        st.sampled_from([PROXY_CMD, LOCAL_CMD]) | st.integers(0, 255),
        st.sampled_from([AF_UNSPEC, TCP4, TCP6, UDP4, UNIX_STREAM]) | st.integers(0, 255),
        st.integers(0, 80) | st.integers(0, 65535),
        st.binary(max_size=100),
    ),
)


@PROPERTY
@given(proxy_like_bytes)
def test_parse_proxy_header_raises_only_proxy_header_error(data: bytes) -> None:
    try:
        result = parse_proxy_header(data)
    except ProxyHeaderError as error:
        assert error.message and "\n" not in error.message
        return
    assert_valid_result(result, data)


@PROPERTY
@given(proxy_like_bytes, st.binary(min_size=1, max_size=50))
def test_payload_never_changes_a_complete_result(data: bytes, payload: bytes) -> None:
    try:
        result = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if result is not None:
        assert parse_proxy_header(data + payload) == result


@PROPERTY
@given(st.one_of(ipv4s.map(lambda a: (a, b"TCP4")), ipv6s.map(lambda a: (a, b"TCP6"))), ports, ports, st.data())
def test_v1_round_trip(source_and_word, sport: int, dport: int, data: st.DataObject) -> None:
    source, word = source_and_word
    destination = data.draw(ipv4s if word == b"TCP4" else ipv6s)
    header = b"PROXY %s %s %s %d %d\r\n" % (word, str(source).encode(), str(destination).encode(), sport, dport)
    assert len(header) <= MAX_V1_BYTES
    result = parse_proxy_header(header + PAYLOAD)
    assert result == ProxyResult((expected_text(source), sport), len(header))
    split = data.draw(st.integers(0, len(header) - 1))
    assert parse_proxy_header(header[:split]) is None


@PROPERTY
@given(
    st.one_of(ipv4s.map(lambda a: (a, TCP4)), ipv6s.map(lambda a: (a, TCP6))),
    ports,
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5),
    st.data(),
)
def test_v2_round_trip(source_and_family, sport: int, tlvs: list[tuple[int, bytes]], data: st.DataObject) -> None:
    source, family = source_and_family
    destination = data.draw(ipv4s if family == TCP4 else ipv6s)
    block = inet_block(str(source), str(destination), sport, 9999) + b"".join(tlv(k, v) for k, v in tlvs)
    header = v2_header(PROXY_CMD, family, block)
    result = parse_proxy_header(header + PAYLOAD)
    assert result == ProxyResult((expected_text(source), sport), len(header))
    split = data.draw(st.integers(0, len(header) - 1))
    assert parse_proxy_header(header[:split]) is None


header_names = st.sampled_from([b"x-forwarded-for", b"forwarded", b"X-Forwarded-For", b"Forwarded", b"host"])
header_values = st.one_of(
    st.binary(max_size=120),
    st.text(alphabet='0123456789abcdef.:[]"_,; =\\forFOR unknown', max_size=120).map(str.encode),
)
peers = st.one_of(ipv4s, ipv6s).map(str) | st.sampled_from(["10.0.0.1", "::ffff:10.0.0.1", "2001:db8:ffff::1"])


@PROPERTY
@given(peers, st.lists(st.tuples(header_names, header_values), max_size=6))
def test_client_from_forwarded_always_gives_an_address(peer: str, headers: list[tuple[bytes, bytes]]) -> None:
    client = client_from_forwarded(peer, headers, trusted)
    assert str(ipaddress.ip_address(client)) == client
    if not trusted(peer):
        assert client == expected_text(ipaddress.ip_address(peer))


@PROPERTY
@given(
    st.one_of(ipv4s, ipv6s).filter(lambda a: not trusted(str(a))),
    st.lists(st.one_of(ipv4s, ipv6s), max_size=4),
    st.lists(st.integers(0, 2**24 - 1).map(lambda n: ipaddress.IPv4Address((10 << 24) | n)), max_size=6),
    st.booleans(),
)
def test_forwarding_headers_round_trip(client, spoofed, proxies, use_forwarded: bool) -> None:
    """Whatever the client prepends, the address our first proxy saw is found."""
    chain = [*spoofed, client, *proxies]
    if use_forwarded:
        nodes = [f'for="[{a}]:1"' if a.version == 6 else f"for={a}" for a in chain]
        headers = fwd(", ".join(nodes))
    else:
        headers = xff(", ".join(str(a) for a in chain))
    assert client_from_forwarded("10.0.0.1", headers, trusted) == expected_text(client)
