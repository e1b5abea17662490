"""Live pastes on real sockets: URL first, readers follow, durable groups."""

from __future__ import annotations

import socket
import struct

import trio

from conftest import TEST_TIMEOUT_S, fetch, key_of, read_until_closed, start_server, text_prefix


async def open_writer(server, preamble: bytes = b"") -> tuple[trio.SocketStream, str]:
    stream = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    if preamble:
        await stream.send_all(preamble)
    line = b""
    with trio.fail_after(5):
        while not line.endswith(b"\n"):
            line += await stream.receive_some(1)
    return stream, line.decode().strip()


async def open_reader(server, key: str) -> tuple[trio.SocketStream, bytes]:
    """Send a GET and read the response head; returns the stream and any body bytes read."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    await stream.send_all(f"GET /{key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"x-paste-state: open" in head
    return stream, rest


def dechunk(raw: bytes) -> tuple[bytes, bool]:
    """Body of a chunked response so far, and whether the last chunk came."""
    body, pos = b"", 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return body, False
        size = int(raw[pos:end], 16)
        if size == 0:
            return body, True
        if len(raw) < end + 2 + size + 2:
            return body, False
        body += raw[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


async def read_until(stream: trio.SocketStream, raw: bytes, want: bytes) -> bytes:
    with trio.fail_after(5):
        while want not in dechunk(raw)[0]:
            raw += await stream.receive_some(65536)
    return raw


async def test_url_comes_before_any_data(server):
    stream, url = await open_writer(server)
    assert url.startswith(f"http://127.0.0.1:{server.http_port}/")
    await stream.aclose()


async def test_reader_follows_chunk_by_chunk_and_ends_with_the_writer(server):
    writer, url = await open_writer(server)
    key = key_of(url)
    reader, raw = await open_reader(server, key)
    await writer.send_all(b"chunk 1\n")
    raw = await read_until(reader, raw, b"chunk 1\n")
    assert dechunk(raw) == (b"chunk 1\n", False)  # chunk 2 not written yet
    await writer.send_all(b"chunk 2\n")
    raw = await read_until(reader, raw, b"chunk 2\n")
    await writer.send_eof()
    with trio.fail_after(5):
        while not dechunk(raw)[1]:
            raw += await reader.receive_some(65536)
    assert dechunk(raw) == (b"chunk 1\nchunk 2\n", True)
    await writer.aclose()
    await reader.aclose()
    final = await fetch(server.http_port, "GET", "/" + key)
    assert final.body == b"chunk 1\nchunk 2\n"
    assert final.headers["x-paste-state"] == "complete"
    assert final.headers["content-length"] == "16"


async def test_many_readers_and_a_late_reader_behind_the_memory_tail(server):
    writer, url = await open_writer(server)
    key = key_of(url)
    early = [await open_reader(server, key) for _ in range(3)]
    lines = b"".join(b"line %06d of a long log\n" % n for n in range(40000))  # ~1 MiB > memory tail
    await writer.send_all(lines[: len(lines) // 2])
    await trio.sleep(0.3)
    late = await open_reader(server, key)
    await writer.send_all(lines[len(lines) // 2 :])
    await writer.send_eof()
    for stream, raw in [*early, late]:
        with trio.fail_after(TEST_TIMEOUT_S):
            while not dechunk(raw)[1]:
                raw += await stream.receive_some(65536)
        assert dechunk(raw) == (lines, True)
        await stream.aclose()
    await writer.aclose()


async def test_reader_that_never_reads_does_not_stall_the_writer(nursery, config, clock):
    server = await start_server(nursery, config, clock, http_send_timeout_s=1.0)
    writer, url = await open_writer(server)
    key = key_of(url)
    stuck, _ = await open_reader(server, key)  # never reads again
    body = b"".join(b"%07d some output that nobody reads\n" % n for n in range(150000))  # ~5 MiB
    with trio.fail_after(10):
        await writer.send_all(body)
        await writer.send_eof()
        reply = await read_until_closed(writer)
    assert reply == b""
    final = await fetch(server.http_port, "GET", "/" + key)
    assert final.body == body and final.headers["x-paste-state"] == "complete"
    await stuck.aclose()


async def test_options_line_alias_and_token(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    await stream.send_all(b"#!ncpaste alias=ci-run-7 token=1 expire=1h\n")
    head = b""
    with trio.fail_after(5):
        while head.count(b"\n") < 2:
            head += await stream.receive_some(100)
    url, token_line = head.decode().splitlines()
    assert url.endswith("/ci-run-7") and token_line.startswith("token: ")
    await stream.send_all(b"building\n")
    await stream.send_eof()
    await read_until_closed(stream)
    await stream.aclose()
    got = await fetch(server.http_port, "GET", "/ci-run-7")
    assert got.body == b"building\n"
    deleted = await fetch(server.http_port, "DELETE", "/ci-run-7",
                          headers={"X-Delete-Token": token_line.split(": ")[1]})
    assert deleted.status == 204


async def test_burn_is_refused_on_the_live_port(server):
    stream = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    await stream.send_all(b"#!ncpaste burn=1\n")
    await stream.send_eof()
    reply = await read_until_closed(stream)
    assert reply == b"error: burn=1 is not available for live pastes: use the netcat port\n"


async def test_plain_nc_without_half_close_ends_after_the_live_idle_timeout(server):
    writer, url = await open_writer(server)
    await writer.send_all(b"then silence\n")
    with trio.fail_after(server.config.live_idle_timeout_s + 5):
        assert await read_until_closed(writer) == b""
    got = await fetch(server.http_port, "GET", "/" + key_of(url))
    assert got.body == b"then silence\n" and got.headers["x-paste-state"] == "complete"


async def test_size_limit_truncates_with_a_marker(nursery, config, clock):
    server = await start_server(nursery, config, clock, max_paste_bytes=1000)
    writer, url = await open_writer(server)
    await writer.send_all(b"x" * 600 + b"\n")
    await trio.sleep(0.1)
    await writer.send_all(b"y" * 600 + b"\n")
    reply = await read_until_closed(writer)
    assert reply == b"error: paste too large: the limit is 1000 bytes; the paste is kept up to there\n"
    got = await fetch(server.http_port, "GET", "/" + key_of(url))
    assert got.body == b"x" * 600 + b"\n" + b"y" * 399
    assert got.headers["x-paste-state"] == "complete"
    assert got.headers["x-paste-truncated"] == "size-limit"


async def test_vanished_writer_leaves_an_incomplete_paste(server):
    writer, url = await open_writer(server)
    await writer.send_all(b"half a log\n")
    await trio.sleep(0.2)
    writer.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await writer.aclose()  # RST: the writer is gone, not finished
    with trio.fail_after(5):
        while True:
            got = await fetch(server.http_port, "GET", "/" + key_of(url))
            if got.headers.get("x-paste-state") != "open":
                break
            await trio.sleep(0.05)
    assert got.body == b"half a log\n" and got.headers["x-paste-state"] == "incomplete"


async def test_head_and_range_on_an_open_paste(server):
    writer, url = await open_writer(server)
    key = key_of(url)
    await writer.send_all(b"0123456789\n")
    await trio.sleep(0.3)  # committed
    head = await fetch(server.http_port, "HEAD", "/" + key)
    assert head.status == 200 and head.headers["x-paste-state"] == "open"
    assert head.headers["cache-control"] == "no-store"
    part = await fetch(server.http_port, "GET", "/" + key, headers={"Range": "bytes=-4"})
    assert part.status == 206 and part.body == b"789\n"
    await writer.send_eof()
    await read_until_closed(writer)
    await writer.aclose()


async def test_expiry_counts_from_the_end(server, clock):
    writer, url = await open_writer(server, b"#!ncpaste expire=1m\n")
    await writer.send_all(b"slow job\n")
    clock.advance(3600)  # the job runs for an hour (injected clock)
    await writer.send_eof()
    await read_until_closed(writer)
    await writer.aclose()
    got = await fetch(server.http_port, "GET", "/" + key_of(url))
    assert got.status == 200
    clock.advance(61)
    assert (await fetch(server.http_port, "GET", "/" + key_of(url))).status == 404


async def test_live_pastes_per_client_are_limited(nursery, config, clock):
    server = await start_server(nursery, config, clock, live_per_client=2)
    held = [await open_writer(server) for _ in range(2)]
    stream = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    reply = await read_until_closed(stream)
    assert reply.startswith(b"error: rate limited: your address has 2 live pastes open already")
    for writer, _ in held:
        await writer.send_eof()
        await read_until_closed(writer)
        await writer.aclose()


# -- binary data and empty pastes on the live port (real nc) ------------------


async def live_nc(server, script: str) -> list[str]:
    """Run ``script`` piped into the real ``nc -N`` on the live port; its output lines."""
    with trio.fail_after(TEST_TIMEOUT_S):
        done = await trio.run_process(
            ["bash", "-c", f"({script}) | nc -N 127.0.0.1 {server.live_port}"], capture_stdout=True
        )
    return done.stdout.decode().splitlines()


def header_values(raw_head: bytes, name: bytes) -> list[bytes]:
    lines = raw_head.split(b"\r\n")[1:]
    return [line.split(b":", 1)[1].strip() for line in lines if line.lower().startswith(name + b":")]


async def raw_get(port: int, target: str, accept: str = "*/*") -> tuple[bytes, bytes]:
    """The response head as sent (to count repeated headers) and the body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        raw = await read_until_closed(stream)
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)[0]
    return head, body


async def test_binary_on_the_live_port_keeps_only_the_text_before_it(server):
    binary = open("/bin/ls", "rb").read()
    lines = await live_nc(server, "echo start; sleep 0.4; cat /bin/ls")
    url, error = lines
    kept = b"start\n" + text_prefix(binary)
    assert error == (
        f"error: not text: NUL byte at byte {len(kept)} (line 2); "
        "ncpaste stores UTF-8 text only; the paste is kept up to there"
    )
    key = key_of(url)
    head, body = await raw_get(server.http_port, f"/{key}")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == kept and b"\0" not in body
    assert header_values(head, b"x-paste-truncated") == [b"not-text"]
    assert header_values(head, b"x-paste-state") == [b"complete"]
    head, page = await raw_get(server.http_port, f"/{key}", accept="text/html")
    assert b"binary data followed" in page and b"size limit" not in page
    assert b"what followed was not text" in page


async def test_text_cut_in_the_middle_of_a_character_is_kept_to_the_last_whole_one(server):
    # "é" is two bytes; the second never comes: a bad byte follows instead.
    lines = await live_nc(server, r"printf 'caf\303'; sleep 0.4; printf '\377rest'")
    url, error = lines
    assert error.startswith("error: not text: invalid UTF-8 at byte 3 (line 1)")
    got = await fetch(server.http_port, "GET", f"/{key_of(url)}")
    assert got.body == b"caf" and got.headers["x-paste-truncated"] == "not-text"


async def test_binary_from_the_first_byte_leaves_no_paste(server):
    error = "error: not text: invalid UTF-8 at byte 0 (line 1); ncpaste stores UTF-8 text only"
    # Within the options window: refused before any URL is handed out.
    assert await live_nc(server, r"printf '\377\376binary'") == [error]
    # After the URL: the paste is removed, nothing of it was text.
    url, late_error = await live_nc(server, r"sleep 0.5; printf '\377\376binary'")
    assert late_error == error
    assert (await fetch(server.http_port, "GET", f"/{key_of(url)}")).status == 404


async def test_an_empty_live_paste_is_not_kept(server):
    url, error = await live_nc(server, "true")
    assert error == "error: empty paste: nothing was received; the URL is not kept"
    got = await fetch(server.http_port, "GET", f"/{key_of(url)}")
    assert got.status == 404 and got.body.startswith(b"error: no such paste")


async def test_the_size_limit_header_appears_once(nursery, config, clock):
    server = await start_server(nursery, config, clock, max_paste_bytes=1000)
    url, error = await live_nc(server, "sleep 0.5; head -c 3000 /dev/zero | tr '\\0' x")
    assert error.endswith("the paste is kept up to there")
    head, body = await raw_get(server.http_port, f"/{key_of(url)}")
    assert body == b"x" * 1000
    assert header_values(head, b"x-paste-truncated") == [b"size-limit"]
