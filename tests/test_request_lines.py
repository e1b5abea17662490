"""Odd request lines and headers on the real HTTP port, byte for byte as a
client might send them: the status each gets, and the RFC section that says
why. Every case ends with the connection closed by the server (``Connection:
close`` is sent where the request is otherwise fine), so a case that hung
would fail its bound instead of passing."""

from __future__ import annotations

import logging

import pytest
import trio

from conftest import TEST_TIMEOUT_S, read_until_closed

CLOSE = b"Host: x\r\nConnection: close\r\n\r\n"

# (name, request bytes, expected status, why)
CASES = [
    ("http/1.1", b"GET / HTTP/1.1\r\n" + CLOSE, 200, "the baseline"),
    ("http/1.0", b"GET / HTTP/1.0\r\n\r\n", 200, "HTTP/1.0 is still served (RFC 9112 2.3)"),
    ("http/9.9", b"GET / HTTP/9.9\r\n" + CLOSE, 505, "RFC 9110 15.6.6: a major version we do not speak"),
    ("http/2.0", b"GET / HTTP/2.0\r\n" + CLOSE, 505, "HTTP/2 is not spoken on this port (no upgrade)"),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "RFC 9113 3.4's preface, sent to an HTTP/1.1 port"),
    ("http/0.9", b"GET / HTTP/0.9\r\n" + CLOSE, 505, "not HTTP/1.x"),
    ("http/1.9", b"GET / HTTP/1.9\r\n" + CLOSE, 200, "RFC 9110 2.5: a higher minor version is answered as 1.1"),
    ("no version", b"GET /\r\n\r\n", 400, "HTTP/0.9's request line is not HTTP/1.x (RFC 9112 3)"),
    ("bad version token", b"GET / FOO/1.1\r\n" + CLOSE, 400, "RFC 9112 2.3: HTTP-version is HTTP/x.y"),
    ("lowercase method", b"get / HTTP/1.1\r\n" + CLOSE, 405, "methods are case-sensitive (RFC 9110 9.1)"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n", 200,
     "RFC 9112 5.2: a server may replace obs-fold with SP (h11 does)"),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\nConnection: close\n\n", 200,
     "RFC 9112 2.2: a recipient may take a bare LF as the line terminator"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\nConnection: close\r\n\r\n", 400,
     "RFC 9112 5.1: a server MUST reject whitespace between a field name and the colon"),
    ("no Host", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "RFC 9112 3.2: a 1.1 request without Host MUST get 400"),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400,
     "RFC 9112 3.2: more than one Host MUST get 400"),
    ("two Content-Lengths", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
     "RFC 9112 6.3 (5): differing Content-Length values are unrecoverable"),
    ("bad Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "RFC 9112 6.3 (5)"),
    ("TE and Content-Length",
     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     400, "RFC 9112 6.1: a server may reject both (the shape of request smuggling), and must close"),
    ("unknown transfer coding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     "RFC 9112 6.1: a transfer coding not understood SHOULD get 501"),
    ("absolute-form", b"GET http://paste.example/ HTTP/1.1\r\n" + CLOSE, 200, "RFC 9112 3.2.2: a server MUST accept it"),
    ("absolute-form, no path", b"GET http://paste.example HTTP/1.1\r\n" + CLOSE, 200, "RFC 9112 3.2.2: empty path is /"),
    ("absolute-form paste", b"GET http://paste.example/nosuchpaste1 HTTP/1.1\r\n" + CLOSE, 404, "routed by its path"),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\n" + CLOSE, 200, "RFC 9110 9.3.7: the server's methods, in Allow"),
    ("GET *", b"GET * HTTP/1.1\r\n" + CLOSE, 400, "RFC 9112 3.2.4: asterisk-form is for OPTIONS only"),
    ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\n" + CLOSE, 405, "RFC 9110 9.3.6: not a proxy"),
    ("TRACE", b"TRACE / HTTP/1.1\r\n" + CLOSE, 405, "RFC 9110 9.3.8: not offered (it would echo headers)"),
    ("path without slash", b"GET abc HTTP/1.1\r\n" + CLOSE, 400, "RFC 9112 3.2: origin-form starts with /"),
    ("control byte in target", b"GET /a\x01b HTTP/1.1\r\n" + CLOSE, 400, "RFC 9112 3.2: the target is visible ASCII"),
    ("NUL in a header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n", 400,
     "RFC 9110 5.5: NUL MUST be rejected or replaced"),
]


async def exchange(port: int, data: bytes) -> bytes:
    with trio.fail_after(TEST_TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            return await read_until_closed(stream)


def status_of(reply: bytes) -> int:
    line = reply.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1.1 "), reply[:200]
    return int(line.split()[1])


@pytest.mark.parametrize(("name", "data", "status", "why"), CASES, ids=[case[0] for case in CASES])
async def test_odd_request_lines_and_headers(server, name, data, status, why):
    reply = await exchange(server.http_port, data)
    assert status_of(reply) == status, (name, why, reply[:300])
    if status >= 400:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert body.startswith(b"error: ") and body.endswith(b"\n") and body.count(b"\n") == 1, body


async def test_options_star_lists_the_methods(server):
    reply = await exchange(server.http_port, b"OPTIONS * HTTP/1.1\r\n" + CLOSE)
    assert b"\r\nallow: GET, HEAD, POST, PUT, DELETE\r\n" in reply


async def test_an_error_on_a_get_keeps_the_connection(server):
    """A 404 (or any refusal of a request read whole) is one answer, not
    the end of a keep-alive connection; a 505 is."""
    with trio.fail_after(TEST_TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
        async with stream:
            await stream.send_all(b"GET /nosuchpaste1 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n" + CLOSE)
            replies = await read_until_closed(stream)
    assert replies.startswith(b"HTTP/1.1 404 ") and b"connection: close" not in replies.split(b"\r\n\r\n")[0]
    assert b"HTTP/1.1 200 " in replies and replies.endswith(b"ok\n")
    after_505 = await exchange(server.http_port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n" + CLOSE)
    assert after_505.startswith(b"HTTP/1.1 505 ") and b"HTTP/1.1 200" not in after_505


async def test_version_refusal_says_what_the_server_speaks(server):
    reply = await exchange(server.http_port, b"GET / HTTP/9.9\r\n" + CLOSE)
    assert reply.endswith(b"error: HTTP/9.9 is not supported: this server speaks HTTP/1.1 and 1.0\n")


async def test_http_1_0_is_answered_then_closed(server):
    """HTTP/1.0 without keep-alive: the answer, then the server closes.
    Asked for keep-alive, it still closes (h11 does not keep 1.0 connections
    alive; RFC 9112 9.3 lets a server close after any response) and says
    so with ``Connection: close``."""
    port = server.http_port
    plain = await exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")
    asked = await exchange(port, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    for reply in (plain, asked):
        assert status_of(reply) == 200 and reply.endswith(b"\r\n\r\nok\n")
        assert b"\r\nconnection: close\r\n" in reply.lower()


async def test_a_refused_request_line_leaves_the_server_serving(server):
    async with trio.open_nursery() as nursery:  # all at once, as a scanner would
        for _, data, _, _ in CASES:
            nursery.start_soon(exchange, server.http_port, data)
    assert status_of(await exchange(server.http_port, b"GET /healthz HTTP/1.1\r\n" + CLOSE)) == 200


async def test_a_peer_that_closes_during_its_body_is_no_internal_error(server, caplog):
    """slowhttptest -B's clients give up mid-body: nothing is stored, nothing
    is logged as an error, and the server serves the next client."""
    with trio.fail_after(TEST_TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
        await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        await trio.sleep(0.2)
        await stream.aclose()
        await trio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert status_of(await exchange(server.http_port, b"GET /healthz HTTP/1.1\r\n" + CLOSE)) == 200
