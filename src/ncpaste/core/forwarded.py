"""Who the client is behind an HTTP proxy: ``Forwarded`` and ``X-Forwarded-For``, without I/O.

A layer-7 proxy names the client in RFC 7239 ``Forwarded`` or the de facto
``X-Forwarded-For``. Both are claims made by whoever wrote the header, so the
shell believes them only from peers the operator listed as trusted proxies
(``core.addresses``), and this module walks the hops right to left past
trusted ones: the first untrusted address is the client. The PROXY protocol
(layer 4) is ``core.proxy``.

Every address returned is normalized (lower-case, compressed IPv6;
IPv4-mapped IPv6 given as the IPv4 address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from ncpaste.core.addresses import MAX_PORT as _MAX_PORT
from ncpaste.core.addresses import MAX_PORT_DIGITS as _MAX_PORT_DIGITS
from ncpaste.core.addresses import normalized

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
        peer = normalized(ipaddress.ip_address(peer_ip))
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
    return normalized(address)
