"""Running in public: limits, access lists, proxies, headers, redaction, integrity."""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct

import pytest
import trio

from conftest import fetch, key_of, nc, read_until_closed, start_server


def proxy_v1(source: str, port: int = 40000) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    dest = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {dest} {port} 9999\r\n".encode()


def proxy_v2(source: str, port: int = 40000) -> bytes:
    address = ipaddress.ip_address(source)
    if address.version == 4:
        body = address.packed + ipaddress.ip_address("127.0.0.1").packed + struct.pack(">HH", port, 9999)
        family = 0x11
    else:
        body = address.packed + ipaddress.ip_address("::1").packed + struct.pack(">HH", port, 9999)
        family = 0x21
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, family]) + struct.pack(">H", len(body)) + body


# -- headers ---------------------------------------------------------------------


async def test_every_paste_response_has_the_safety_headers(server):
    key = key_of(await nc(server.tcp_port, b"<script>alert(1)</script>\n"))
    for path in ("/" + key, "/nope12345", "/"):
        got = await fetch(server.http_port, "GET", path)
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert got.headers["x-robots-tag"].startswith("noindex")
        assert got.headers["referrer-policy"] == "no-referrer"
        assert got.headers["content-type"] == "text/plain; charset=utf-8"


async def test_robots_txt_disallows_everything(server):
    got = await fetch(server.http_port, "GET", "/robots.txt")
    assert got.status == 200 and got.body == b"User-agent: *\nDisallow: /\n"


async def test_names_cannot_address_anything_but_pastes(server):
    for path in ("/%2e%2e/etc/passwd", "/..%2fdata.mdb", "/data.mdb/..", "/.well-known", "/a/b/c", "/%00abc"):
        got = await fetch(server.http_port, "GET", path)
        assert got.status == 404, path
    for alias in ("pаypal", "ℌello", "a\u200bbc"):  # Cyrillic а, letterlike, zero-width
        reply = await nc(server.tcp_port, f"#!ncpaste alias={alias}\nx\n".encode())
        assert reply.startswith(b"error: options line must be plain ASCII"), reply


# -- limits ------------------------------------------------------------------------


async def test_paste_rate_limit_on_netcat_and_http(nursery, config, clock):
    server = await start_server(nursery, config, clock, limits_enabled=True, pastes_per_minute=3)
    for n in range(3):
        assert (await nc(server.tcp_port, b"%d\n" % n)).startswith(b"http://")
    refused = await nc(server.tcp_port, b"one too many\n")
    assert refused == b"error: rate limited: too many pastes from your address, retry in 20 s\n"
    over = await fetch(server.http_port, "POST", "/", b"one too many\n")
    assert over.status == 429
    assert over.headers["retry-after"] == "20"
    assert over.body == b"error: rate limited: too many pastes from your address, retry in 20 s\n"
    assert (await server.store.stats()).pastes == 3
    # Reads are not limited.
    assert (await fetch(server.http_port, "GET", "/healthz")).status == 200


async def test_byte_budget_per_day(nursery, config, clock):
    server = await start_server(nursery, config, clock, limits_enabled=True, bytes_per_day=1000)
    assert (await nc(server.tcp_port, b"x" * 799 + b"\n")).startswith(b"http://")
    refused = await nc(server.tcp_port, b"y" * 300 + b"\n")
    assert refused.startswith(b"error: rate limited: your address pasted too many bytes today, retry in ")


async def test_connections_per_client(nursery, config, clock):
    server = await start_server(nursery, config, clock, limits_enabled=True, connections_per_client=2)
    held = [await trio.open_tcp_stream("127.0.0.1", server.tcp_port) for _ in range(2)]
    for stream in held:
        await stream.send_all(b"holding ")
    await trio.sleep(0.05)
    refused = await nc(server.tcp_port, b"third\n")
    assert refused.startswith(b"error: rate limited: too many connections from your address, retry in ")
    for stream in held:
        await stream.send_eof()
        assert (await read_until_closed(stream)).startswith(b"http://")
        await stream.aclose()
    assert (await nc(server.tcp_port, b"fine again\n")).startswith(b"http://")


async def test_limits_off_switches_every_limit_off(nursery, config, clock):
    server = await start_server(nursery, config, clock, limits_enabled=False, pastes_per_minute=1, bytes_per_day=10)
    for n in range(5):
        assert (await nc(server.tcp_port, b"paste %d is long enough\n" % n)).startswith(b"http://")


async def test_deny_list_refuses_both_ports(nursery, config, clock):
    server = await start_server(nursery, config, clock, deny=("127.0.0.0/8",))
    assert await nc(server.tcp_port, b"x\n") == b"error: your address may not use this service\n"
    got = await fetch(server.http_port, "GET", "/healthz")
    assert got.status == 403 and got.body == b"error: your address may not use this service\n"


async def test_allow_list_lets_only_listed_in(nursery, config, clock):
    server = await start_server(nursery, config, clock, allow=("10.0.0.0/8",))
    assert await nc(server.tcp_port, b"x\n") == b"error: your address may not use this service\n"
    server2 = await start_server(nursery, config, clock, allow=("127.0.0.1",), data_dir=config.data_dir / "second")
    assert (await nc(server2.tcp_port, b"x\n")).startswith(b"http://")


# -- proxies -----------------------------------------------------------------------


async def test_proxy_v1_and_v2_from_trusted_proxy_name_the_real_client(nursery, config, clock, caplog):
    caplog.set_level(logging.INFO)
    server = await start_server(
        nursery, config, clock, trusted_proxies=("127.0.0.1/32",), limits_enabled=True, pastes_per_minute=1
    )
    first = await nc(server.tcp_port, proxy_v1("203.0.113.7") + b"from seven\n")
    assert first.startswith(b"http://")
    assert (await fetch(server.http_port, "GET", "/" + key_of(first))).body == b"from seven\n"
    # The limit is per real client: 203.0.113.7 is now out of pastes, 198.51.100.9 is not.
    refused = await nc(server.tcp_port, proxy_v1("203.0.113.7") + b"again\n")
    assert refused.startswith(b"error: rate limited")
    other = await nc(server.tcp_port, proxy_v2("198.51.100.9") + b"from nine\n")
    assert other.startswith(b"http://")
    six = await nc(server.tcp_port, proxy_v2("2001:db8::5") + b"from six\n")
    assert six.startswith(b"http://")
    assert "client=203.0.113.7" in caplog.text and "client=198.51.100.9" in caplog.text
    assert "client=2001:db8::5" in caplog.text


async def test_proxy_header_from_untrusted_peer_is_refused(server):
    reply = await nc(server.tcp_port, proxy_v1("203.0.113.7") + b"spoofed\n")
    assert reply == b"error: PROXY protocol header from an address that is not a trusted proxy\n"
    assert (await server.store.stats()).pastes == 0


async def test_forwarded_headers_only_from_trusted_proxies(nursery, config, clock):
    untrusting = await start_server(nursery, config, clock, deny=("203.0.113.0/24",))
    spoof = await fetch(untrusting.http_port, "GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
    assert spoof.status == 200  # the header is ignored: the peer is 127.0.0.1
    trusting = await start_server(
        nursery, config, clock, deny=("203.0.113.0/24",), trusted_proxies=("127.0.0.1",),
        data_dir=config.data_dir / "second",
    )
    denied = await fetch(trusting.http_port, "GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
    assert denied.status == 403
    forwarded = await fetch(trusting.http_port, "GET", "/healthz", headers={"Forwarded": 'for="203.0.113.8"'})
    assert forwarded.status == 403
    fine = await fetch(trusting.http_port, "GET", "/healthz", headers={"X-Forwarded-For": "198.51.100.1"})
    assert fine.status == 200


async def test_limiter_memory_is_bounded_under_a_flood_of_addresses(nursery, config, clock):
    server = await start_server(
        nursery, config, clock, trusted_proxies=("127.0.0.1",), limits_enabled=True, max_clients_tracked=50
    )
    for n in range(300):
        reply = await nc(server.tcp_port, proxy_v1(f"198.18.{n // 250}.{n % 250 + 1}") + b"x\n")
        assert reply.startswith(b"http://")
    assert server.guard.limiter.tracked() <= 50


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_ipv6_on_both_ports(nursery, config, clock):
    from ncpaste.config import Address

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")
    server = await start_server(nursery, config, clock, tcp=Address("::1", 0), http=Address("::1", 0))
    stream = await trio.open_tcp_stream("::1", server.tcp_port)
    async with stream:
        await stream.send_all(b"over six\n")
        await stream.send_eof()
        reply = await read_until_closed(stream)
    assert reply.startswith(f"http://[::1]:{server.http_port}/".encode())
    http = await trio.open_tcp_stream("::1", server.http_port)
    async with http:
        await http.send_all(f"GET /{key_of(reply)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = await read_until_closed(http)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nover six\n")


# -- redaction ---------------------------------------------------------------------

SECRETS = (
    b"step 1 ok\n"
    b"export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    b"password=hunter2hunter2\n"
    b"step 2 ok\n"
)


async def test_redact_on_netcat_reports_and_masks(server):
    reply = await nc(server.tcp_port, b"#!ncpaste redact=1\n" + SECRETS)
    url, redacted, end = reply.split(b"\n")
    assert redacted.startswith(b"redacted: ") and int(redacted.split(b": ")[1]) >= 2 and end == b""
    stored = (await fetch(server.http_port, "GET", "/" + key_of(url))).body
    assert b"AKIAIOSFODNN7EXAMPLE" not in stored and b"hunter2hunter2" not in stored
    assert stored.startswith(b"step 1 ok\n") and stored.endswith(b"step 2 ok\n")


async def test_redact_line_only_when_asked_and_nonzero(server):
    clean = await nc(server.tcp_port, b"#!ncpaste redact=1\nnothing secret\n")
    assert clean.count(b"\n") == 1


async def test_redact_over_http_and_server_default(nursery, config, clock):
    server = await start_server(nursery, config, clock, redact_default=True)
    created = await fetch(server.http_port, "POST", "/", SECRETS)
    assert created.status == 201 and int(created.headers["x-redacted"]) >= 2
    stored = (await fetch(server.http_port, "GET", "/" + key_of(created.body))).body
    assert b"hunter2hunter2" not in stored
    # A server default does not add a line to netcat replies nobody asked for.
    reply = await nc(server.tcp_port, SECRETS)
    assert reply.count(b"\n") == 1


# -- integrity and log hygiene -----------------------------------------------------


async def test_corrupt_record_is_500_and_logged_never_wrong_bytes(server, caplog):
    caplog.set_level(logging.INFO)
    key = key_of(await nc(server.tcp_port, b"precious bytes\n"))
    lmdb_store = server.store._store
    env, db = lmdb_store._env, lmdb_store._pastes
    with env.begin(write=True, db=db) as txn:
        record = bytearray(txn.get(key.encode()))
        record[-3] ^= 0xFF
        txn.put(key.encode(), bytes(record))
    got = await fetch(server.http_port, "GET", "/" + key)
    assert got.status == 500
    assert got.body == b"error: stored paste is damaged\n"
    assert f"paste.corrupt key={key}" in caplog.text


async def test_logs_never_contain_bodies_or_tokens(server, caplog):
    caplog.set_level(logging.DEBUG)
    body = b"TOP-SECRET-BODY-MARKER\n"
    reply = await nc(server.tcp_port, b"#!ncpaste token=1\n" + body)
    token = reply.split(b"token: ")[1].strip().decode()
    created = await fetch(server.http_port, "POST", "/", b"ANOTHER-BODY-MARKER\n")
    http_token = created.headers["x-delete-token"]
    key = key_of(reply)
    await fetch(server.http_port, "GET", "/" + key)
    await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": "wrong" + token})
    await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": token})
    text = caplog.text
    assert "paste.created key=" in text
    for secret in ("TOP-SECRET-BODY-MARKER", "ANOTHER-BODY-MARKER", token, http_token):
        assert secret not in text
