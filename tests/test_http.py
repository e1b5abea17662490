"""The real server in-process on real loopback sockets: the HTTP port."""

from __future__ import annotations

import trio

from conftest import TEST_TIMEOUT_S, fetch, key_of, nc, read_until_closed

LOG = "".join(f"line {n}: building target ✓ {n * 7}\n" for n in range(1, 200)).encode()


async def create(server, body: bytes = LOG, query: str = "") -> tuple[str, dict[str, str]]:
    reply = await fetch(server.http_port, "POST", "/" + query, body)
    assert reply.status == 201, reply.body
    return key_of(reply.body), reply.headers


async def test_post_raw_then_get_exact_bytes_and_headers(server):
    reply = await fetch(server.http_port, "POST", "/", LOG)
    assert reply.status == 201
    url = reply.body.decode()
    assert url.endswith("\n") and url.count("\n") == 1
    assert reply.headers["location"] == url.strip()
    assert len(reply.headers["x-delete-token"]) >= 20
    assert reply.headers["x-expires"].endswith("GMT")
    got = await fetch(server.http_port, "GET", "/" + key_of(url))
    assert got.status == 200
    assert got.body == LOG
    assert got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-length"] == str(len(LOG))
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["etag"].startswith('"')
    assert got.headers["last-modified"].endswith("GMT")
    max_age = int(got.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 7 * 86400
    # Shared caches (a front cache, a CDN) ask again after a few seconds, so a
    # deleted paste does not live on in them.
    assert got.headers["cache-control"].endswith(", s-maxage=5")


async def test_head_has_headers_and_no_body(server):
    key, _ = await create(server)
    got = await fetch(server.http_port, "HEAD", "/" + key)
    assert got.status == 200 and got.body == b""
    assert got.headers["content-length"] == str(len(LOG))


async def test_if_none_match_gives_304(server):
    key, _ = await create(server)
    first = await fetch(server.http_port, "GET", "/" + key)
    again = await fetch(server.http_port, "GET", "/" + key, headers={"If-None-Match": first.headers["etag"]})
    assert again.status == 304 and again.body == b""
    other = await fetch(server.http_port, "GET", "/" + key, headers={"If-None-Match": '"nope"'})
    assert other.status == 200 and other.body == LOG


async def test_ranges(server):
    key, _ = await create(server)
    part = await fetch(server.http_port, "GET", "/" + key, headers={"Range": "bytes=5-14"})
    assert part.status == 206 and part.body == LOG[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(LOG)}"
    tail = await fetch(server.http_port, "GET", "/" + key, headers={"Range": "bytes=-100"})
    assert tail.status == 206 and tail.body == LOG[-100:]
    beyond = await fetch(server.http_port, "GET", "/" + key, headers={"Range": f"bytes={len(LOG)}-"})
    assert beyond.status == 416
    assert beyond.headers["content-range"] == f"bytes */{len(LOG)}"


async def test_multipart_file_and_stdin_forms(server):
    boundary = "xyzBOUNDARYxyz"
    form = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="expire"\r\n\r\n1h\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="f"; filename="build.log"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + LOG + f"\r\n--{boundary}--\r\n".encode()
    reply = await fetch(
        server.http_port, "POST", "/", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert reply.status == 201, reply.body
    got = await fetch(server.http_port, "GET", "/" + key_of(reply.body))
    assert got.body == LOG
    assert int(got.headers["cache-control"].split("max-age=")[1].split(",")[0]) <= 3600


async def test_multipart_without_paste_field_is_400(server):
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"expire\"\r\n\r\n1h\r\n--{boundary}--\r\n").encode()
    reply = await fetch(
        server.http_port, "POST", "/", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert reply.status == 400
    assert reply.body.startswith(b"error: the form has no paste field")


async def test_put_creates_alias_and_conflict_is_409(server):
    reply = await fetch(server.http_port, "PUT", "/release-notes", b"v1\n")
    assert reply.status == 201
    assert reply.body.decode().strip().endswith("/release-notes")
    again = await fetch(server.http_port, "PUT", "/release-notes", b"v2\n")
    assert again.status == 409
    assert b"taken" in again.body
    got = await fetch(server.http_port, "GET", "/release-notes")
    assert got.body == b"v1\n"


async def test_reserved_and_invalid_aliases(server):
    assert (await fetch(server.http_port, "PUT", "/healthz", b"x")).status == 405
    bad = await fetch(server.http_port, "PUT", "/ab", b"x")
    assert bad.status == 400 and b"3 to 64" in bad.body
    reserved = await fetch(server.http_port, "PUT", "/admin", b"x")
    assert reserved.status == 400 and b"reserved" in reserved.body


async def test_delete_with_token(server):
    key, headers = await create(server)
    token = headers["x-delete-token"]
    wrong_token = "A" + token[1:] if token[0] != "A" else "B" + token[1:]
    wrong = await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": wrong_token})
    assert wrong.status == 403
    missing = await fetch(server.http_port, "DELETE", "/" + key)
    assert missing.status == 400
    ok = await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": token})
    assert ok.status == 204
    assert (await fetch(server.http_port, "GET", "/" + key)).status == 404
    gone = await fetch(server.http_port, "DELETE", "/" + key, headers={"X-Delete-Token": token})
    assert gone.status == 404


async def test_burn_after_read_serves_exactly_once(server):
    key, _ = await create(server, query="?burn=1")
    head = await fetch(server.http_port, "HEAD", "/" + key)
    assert head.status == 200 and head.headers["cache-control"] == "no-store"
    first = await fetch(server.http_port, "GET", "/" + key)
    assert first.status == 200 and first.body == LOG
    assert (await fetch(server.http_port, "GET", "/" + key)).status == 404


async def test_concurrent_burn_readers_one_winner(server):
    key, _ = await create(server, query="?burn=1")
    statuses: list[int] = []

    async def read() -> None:
        statuses.append((await fetch(server.http_port, "GET", "/" + key)).status)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(read)
    assert sorted(statuses) == [200] + [404] * 7


async def test_errors_have_status_and_one_line_body(server):
    cases = [
        ("POST", "/", b"", {}, 400, b"error: empty paste"),
        ("POST", "/", b"a\x00b", {}, 415, b"error: not text: NUL byte at byte 1"),
        ("POST", "/", b"ok\n\xff", {}, 415, b"error: not text: invalid UTF-8 at byte 3 (line 2)"),
        ("POST", "/?frobnicate=1", b"x", {}, 400, b"error: unknown option"),
        ("POST", "/?expire=soon", b"x", {}, 400, b"error: bad option expire=soon"),
        ("GET", "/doesNotExist42", None, {}, 404, b"error: no such paste"),
        ("GET", "/../etc/passwd", None, {}, 404, b"error: no such paste"),
        ("PATCH", "/", None, {}, 405, b"error: method PATCH not allowed"),
    ]
    for method, path, body, headers, status, start in cases:
        reply = await fetch(server.http_port, method, path, body, headers)
        assert reply.status == status, (method, path, reply.status, reply.body)
        assert reply.body.startswith(start), (path, reply.body)
        assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"


async def test_too_large_is_413_and_nothing_stored(nursery, config, clock):
    from conftest import start_server

    server = await start_server(nursery, config, clock, max_paste_bytes=1024)
    reply = await fetch(server.http_port, "POST", "/", b"x" * 5000)
    assert reply.status == 413
    assert reply.body == b"error: paste too large: the limit is 1 KiB\n"
    stats = await server.store.stats()
    assert stats.pastes == 0


async def test_too_large_chunked_body_is_413(nursery, config, clock):
    from conftest import start_server

    server = await start_server(nursery, config, clock, max_paste_bytes=1024)
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    async with stream:
        await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            await stream.send_all(b"400\r\n" + b"y" * 1024 + b"\r\n")
        await stream.send_all(b"0\r\n\r\n")
        await stream.send_eof()
        answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(b"error: paste too large: the limit is 1 KiB\n")


async def test_headers_too_large_is_431(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        await stream.send_eof()
        answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_malformed_request_is_400(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    async with stream:
        await stream.send_all(b"THIS IS NOT HTTP\r\n\r\n")
        await stream.send_eof()
        answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_keep_alive_serves_hundreds_of_requests_on_one_connection(server):
    key, _ = await create(server)
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    request = f"GET /{key} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    async with stream:
        with trio.fail_after(TEST_TIMEOUT_S):
            buffer = b""
            for _ in range(300):
                await stream.send_all(request)
                while buffer.count(LOG) < 1:
                    buffer += await stream.receive_some(65536)
                assert buffer.startswith(b"HTTP/1.1 200 ")
                buffer = buffer[buffer.index(LOG) + len(LOG) :]


async def test_usage_page_and_healthz(server):
    usage = await fetch(server.http_port, "GET", "/")
    assert usage.status == 200
    assert f"nc 127.0.0.1 {server.tcp_port}".encode() in usage.body
    assert f"http://127.0.0.1:{server.http_port}/".encode() in usage.body
    health = await fetch(server.http_port, "GET", "/healthz")
    assert health.status == 200 and health.body == b"ok\n"


async def test_usage_page_shows_the_read_options_and_the_browser_view(server):
    usage = (await fetch(server.http_port, "GET", "/")).body.decode()
    for shown in ("?tail=50", "?lines=1400-1450", "?grep=error&i", "ansi=strip", "browser", "?raw", "#L42"):
        assert shown in usage, shown


async def test_grep_then_tail_gives_the_last_matches_over_http(server):
    log = b"".join(b"step %d ok\n" % n if n % 3 else b"step %d ERROR\n" % n for n in range(1, 11))
    url = await nc(server.tcp_port, log)
    key = key_of(url)
    got = await fetch(server.http_port, "GET", f"/{key}?grep=ERROR&tail=2")
    assert got.body == b"6:step 6 ERROR\n9:step 9 ERROR\n"
    got = await fetch(server.http_port, "GET", f"/{key}?grep=error&i&tail=1")
    assert got.body == b"9:step 9 ERROR\n"


async def test_slow_header_client_is_timed_out_and_others_still_served(nursery, config, clock):
    from conftest import start_server

    # Limits off: the point is the header timeout, not the per-client cap.
    server = await start_server(nursery, config, clock, http_header_timeout_s=0.5, limits_enabled=False)
    idle = [await trio.open_tcp_stream("127.0.0.1", server.http_port) for _ in range(50)]
    for stream in idle:
        await stream.send_all(b"GET / HT")  # never finishes its request line
    key = key_of(await nc(server.tcp_port, b"still served\n"))
    got = await fetch(server.http_port, "GET", "/" + key)
    assert got.body == b"still served\n"
    with trio.fail_after(5):
        for stream in idle:
            assert await read_until_closed(stream) == b""  # closed by the server
            await stream.aclose()


async def test_expect_100_continue(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    async with stream:
        await stream.send_all(
            b"PUT /continued HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await stream.receive_some(1024)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"hello\n")
        await stream.send_eof()
        answer = interim + await read_until_closed(stream)
    assert b"HTTP/1.1 201 " in answer
