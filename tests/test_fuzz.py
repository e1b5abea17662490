"""A seeded fuzz run against both ports of a running server.

Random and mutated bytes (HTTP requests with flipped bytes, half-written
PROXY headers, options lines, binary junk) hit both ports for a bounded time.
Afterwards the server must still serve every paste made before, byte for byte.
"""

from __future__ import annotations

import random

import pytest
import trio

from conftest import fetch, key_of, nc

pytestmark = pytest.mark.slow

SEED = 20261129
FUZZ_SECONDS = 4.0
CONNECTIONS_AT_ONCE = 16

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /?expire=1h HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 80\r\n\r\n"
    b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nhi\r\n--XX--\r\n",
    b"PUT /some-alias HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"DELETE /abcdefghijkm HTTP/1.1\r\nX-Delete-Token: zzz\r\n\r\n",
    b"GET /abc HTTP/1.1\r\nRange: bytes=-5\r\nIf-None-Match: \"x\"\r\n\r\n",
    b"#!ncpaste expire=1h alias=fuzzed burn=1 token=1 redact=1\nbody\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello\n",
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02hi",
    "plain text ✓ with ünïcödé\n".encode(),
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if choice < 0.3 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice < 0.5:
            buf[rng.randrange(len(buf) + 1):rng.randrange(len(buf) + 1)] = rng.randbytes(rng.randint(1, 64))
        elif choice < 0.7 and buf:
            start = rng.randrange(len(buf))
            del buf[start:start + rng.randint(1, 16)]
        elif choice < 0.85:
            buf += rng.choice(SEEDS)
        else:
            buf = bytearray(rng.randbytes(rng.randint(0, 512)))
    return bytes(buf)


async def hit(port: int, payload: bytes, rng: random.Random) -> None:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return
    async with stream:
        with trio.move_on_after(2):
            try:
                cut = rng.randrange(len(payload) + 1)
                await stream.send_all(payload[:cut])
                if rng.random() < 0.5:
                    await trio.sleep(rng.random() * 0.05)
                await stream.send_all(payload[cut:])
                if rng.random() < 0.7:
                    await stream.send_eof()
                while await stream.receive_some(65536):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


async def test_fuzz_both_ports_then_every_paste_still_serves(server):
    rng = random.Random(SEED)
    before = {}
    for n in range(20):
        body = ("".join(f"line {i} of paste {n} ✓\n" for i in range(rng.randint(1, 500)))).encode()
        before[key_of(await nc(server.tcp_port, body))] = body

    deadline = trio.current_time() + FUZZ_SECONDS
    sent = 0
    async with trio.open_nursery() as nursery:
        limiter = trio.CapacityLimiter(CONNECTIONS_AT_ONCE)

        async def one(payload: bytes, port: int, seed: int) -> None:
            async with limiter:
                await hit(port, payload, random.Random(seed))

        while trio.current_time() < deadline:
            port = rng.choice((server.tcp_port, server.http_port))
            payload = mutate(rng, rng.choice(SEEDS))
            await limiter.acquire_on_behalf_of(sent)
            limiter.release_on_behalf_of(sent)
            nursery.start_soon(one, payload, port, rng.randrange(1 << 30))
            sent += 1
    assert sent > 100

    for key, body in before.items():
        got = await fetch(server.http_port, "GET", "/" + key)
        assert got.status == 200 and got.body == body, key
    assert (await fetch(server.http_port, "GET", "/healthz")).body == b"ok\n"
