"""Reading logs over HTTP: content negotiation, ?raw, ?tail, ?lines,
?ansi=strip, ?grep, on finished and on live pastes."""

from __future__ import annotations

import trio

from conftest import fetch, key_of, nc, read_until_closed

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
LOG = b"".join(b"\x1b[32mok\x1b[0m step %d\n" % n if n % 10 else b"\x1b[31mFAIL\x1b[0m step %d\n" % n
               for n in range(1, 101))


async def test_curl_gets_bytes_browser_gets_html_raw_forces_bytes(server):
    key = key_of(await nc(server.tcp_port, LOG))
    curl = await fetch(server.http_port, "GET", "/" + key, headers={"Accept": "*/*"})
    assert curl.body == LOG and curl.headers["content-type"] == "text/plain; charset=utf-8"
    assert "accept" in curl.headers["vary"]
    page = await fetch(server.http_port, "GET", "/" + key, headers={"Accept": BROWSER_ACCEPT})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert b'id="L100"' in page.body and b"\x1b" not in page.body
    raw = await fetch(server.http_port, "GET", f"/{key}?raw", headers={"Accept": BROWSER_ACCEPT})
    assert raw.body == LOG and raw.headers["content-type"] == "text/plain; charset=utf-8"


async def test_tail_lines_strip_grep(server):
    key = key_of(await nc(server.tcp_port, LOG))
    tail = await fetch(server.http_port, "GET", f"/{key}?tail=2&ansi=strip")
    assert tail.body == b"ok step 99\nFAIL step 100\n"
    lines = await fetch(server.http_port, "GET", f"/{key}?lines=9-11")
    assert lines.body == LOG.split(b"\n")[8] + b"\n" + LOG.split(b"\n")[9] + b"\n" + LOG.split(b"\n")[10] + b"\n"
    grep = await fetch(server.http_port, "GET", f"/{key}?grep=FAIL&ansi=strip")
    assert grep.body == b"".join(b"%d:FAIL step %d\n" % (n, n) for n in range(10, 101, 10))
    bad = await fetch(server.http_port, "GET", f"/{key}?tail=lots")
    assert bad.status == 400 and bad.body.startswith(b"error: ")
    unknown = await fetch(server.http_port, "GET", f"/{key}?frobnicate=1")
    assert unknown.status == 400


async def test_tail_and_html_on_a_live_paste(server):
    writer = await trio.open_tcp_stream("127.0.0.1", server.live_port)
    url = b""
    while not url.endswith(b"\n"):
        url += await writer.receive_some(1)
    key = key_of(url)
    await writer.send_all(b"first\nsecond\nthird\n")
    await trio.sleep(0.3)
    tail = await fetch(server.http_port, "GET", f"/{key}?tail=1")
    assert tail.body == b"third\n" and tail.headers["x-paste-state"] == "open"
    reader = await trio.open_tcp_stream("127.0.0.1", server.http_port)
    await reader.send_all(f"GET /{key} HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n".encode())
    await trio.sleep(0.2)
    await writer.send_all(b"fourth\n")
    await writer.send_eof()
    await read_until_closed(writer)
    page = await read_until_closed(reader)
    assert b"text/html" in page.split(b"\r\n\r\n")[0]
    for n, word in enumerate([b"first", b"second", b"third", b"fourth"], start=1):
        assert b'id="L%d"' % n in page and word in page
    assert page.rstrip().endswith(b"0")  # the last chunk: the page ended with the writer
