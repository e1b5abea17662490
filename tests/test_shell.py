"""Tier 2: the trio shell over in-memory streams, with a dict-backed store and
trio's autojump clock, so timeouts are exercised in virtual time."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio
import trio.testing

from ncpaste.config import Current
from ncpaste.core import keys
from ncpaste.core.errors import AliasTaken, Forbidden, NotFound
from ncpaste.net.deadlines import Deadlines
from ncpaste.net.guard import Guard
from ncpaste.net.hot import HotCache
from ncpaste.net.http import HttpConnection
from ncpaste.net.live_state import LiveRegistry
from ncpaste.net.metrics import Metrics
from ncpaste.net.netcat import handle_netcat
from ncpaste.net.pastes import Pastes, Site
from ncpaste.store import Created, NewPaste, StoredPaste, StoreStats, records

from conftest import read_until_closed


class MemoryStore:
    """The smallest PasteStore: shows the shell needs nothing more than the protocol."""

    def __init__(self, clock_ms) -> None:
        self.clock_ms = clock_ms
        self.pastes: dict[str, StoredPaste] = {}

    async def create(self, paste: NewPaste) -> Created:
        key = paste.alias or keys.new_key(12)
        if key in self.pastes:
            raise AliasTaken("alias taken")
        now = self.clock_ms()
        packed = records.pack(paste)  # the format every backend stores
        meta = packed.meta(now)
        self.pastes[key] = StoredPaste(key, meta, packed.frame)
        return Created(key, now, meta.expires_ms)

    async def get(self, key):
        paste = self.pastes.get(key)
        return paste if paste and paste.meta.expires_ms > self.clock_ms() else None

    async def take(self, key):
        paste = await self.get(key)
        self.pastes.pop(key, None)
        return paste

    async def delete(self, key, token):
        paste = await self.get(key)
        if paste is None:
            raise NotFound("no such paste")
        if not keys.token_matches(token, paste.meta.token_hash):
            raise Forbidden("wrong delete token")
        del self.pastes[key]

    async def sweep_expired(self):
        return 0

    async def refill_pool(self):
        return 0

    async def stats(self):
        return StoreStats(len(self.pastes), 0, 0, 0, 0)

    async def ping(self):
        return None


class Shell:
    """The netcat handler with what the server hands it, on a memory store."""

    def __init__(self, config, clock) -> None:
        self.current = Current(config)
        self.store = MemoryStore(clock)
        self._pastes = Pastes(self.store, clock, self.current)
        self._site = Site(config, "https://paste.example.com", tcp_port=9999, live_port=None)
        self._guard, self._metrics = Guard(self.current), Metrics()

    @property
    def config(self):
        return self.current.config

    @config.setter
    def config(self, config) -> None:
        self.current.config = config

    async def handle(self, stream) -> None:
        await handle_netcat(
            stream, current=self.current, pastes=self._pastes, site=self._site, guard=self._guard, metrics=self._metrics
        )

    async def handle_http(self, stream) -> None:
        deadlines = Deadlines()
        connection = HttpConnection(
            stream, current=self.current, pastes=self._pastes, site=self._site, guard=self._guard,
            metrics=self._metrics, hot=HotCache(), live=LiveRegistry(), deadlines=deadlines,
        )
        async with trio.open_nursery() as watcher:
            watcher.start_soon(deadlines.run)
            await connection.serve()
            watcher.cancel_scope.cancel()


@pytest.fixture
def service(config, clock):
    return Shell(config, clock)


async def _netcat(service, chunks: list[bytes], *, half_close: bool, gap_s: float = 0.0) -> tuple[bytes, float]:
    client, server_side = trio.testing.memory_stream_pair()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle, server_side)
        for chunk in chunks:
            await client.send_all(chunk)
            await trio.sleep(gap_s)
        if half_close:
            await client.send_eof()
        reply = await read_until_closed(client)
    return reply, trio.current_time() - started


async def test_half_close_replies_at_once(service, autojump_clock):
    reply, elapsed = await _netcat(service, [b"hello\n"], half_close=True)
    assert reply.startswith(b"https://paste.example.com/") and reply.endswith(b"\n")
    assert elapsed < 0.01  # virtual time: no timeout was waited for


async def test_no_half_close_ends_after_idle_gap(service, autojump_clock):
    reply, elapsed = await _netcat(service, [b"plain nc\n"], half_close=False)
    assert reply.startswith(b"https://paste.example.com/")
    assert elapsed == pytest.approx(service.config.idle_timeout_s, abs=0.01)


async def test_idle_gap_is_reset_by_every_chunk(service, autojump_clock):
    gap = service.config.idle_timeout_s * 0.8
    reply, elapsed = await _netcat(service, [b"a\n", b"b\n", b"c\n", b"d\n"], half_close=False, gap_s=gap)
    key = reply.decode().strip().rsplit("/", 1)[1]
    stored = service.store.pastes[key]
    assert stored.meta.size == 8  # all four chunks, though the total exceeded one idle period
    assert elapsed > 3 * gap


async def test_first_byte_may_come_late(service, autojump_clock):
    late = service.config.first_byte_timeout_s * 0.9
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle, server_side)
        await client.send_all(b"#!ncpaste expire=1h\n")  # options first, output much later
        await trio.sleep(late)
        await client.send_all(b"finally\n")
        await client.send_eof()
        reply = await read_until_closed(client)
    assert reply.startswith(b"https://paste.example.com/")


async def test_nothing_at_all_is_an_error_after_first_byte_timeout(service, autojump_clock):
    reply, elapsed = await _netcat(service, [], half_close=False)
    assert reply == b"error: empty paste: nothing arrived within 2 s\n"
    assert elapsed >= service.config.first_byte_timeout_s


async def test_a_silent_client_is_answered_and_closed_at_the_first_byte_timeout(service, autojump_clock):
    """Plain nc with empty input stays connected and silent: it waits the
    first-byte timeout, then gets its line and the close at once (nothing it
    sent is left unread, so there is no drain to wait for)."""
    reply, elapsed = await _netcat(service, [], half_close=False)
    assert reply == b"error: empty paste: nothing arrived within 2 s\n"
    assert elapsed == pytest.approx(service.config.first_byte_timeout_s, abs=0.01)


async def test_a_client_that_leaves_without_data_is_answered_at_once(service, autojump_clock):
    for sent in ([], [b"#!ncpaste expire=1h\n"]):
        reply, elapsed = await _netcat(service, sent, half_close=True)
        assert reply == b"error: empty paste: nothing was received\n"
        assert elapsed < 0.01  # virtual time: no timeout was waited for


async def test_trickling_client_is_cut_at_max_upload(service, autojump_clock):
    service.config = replace(service.config, max_upload_s=5.0)
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle, server_side)

        async def trickle() -> None:
            try:
                for _ in range(1000):
                    await client.send_all(b".")
                    await trio.sleep(0.1)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        nursery.start_soon(trickle)
        reply = await read_until_closed(client)
        nursery.cancel_scope.cancel()
    assert reply == b"error: upload took longer than 5 s: send less at a time\n"


async def test_too_large_replies_then_drains_instead_of_resetting(service, autojump_clock):
    service.config = replace(service.config, max_paste_bytes=1000)
    chunks = [b"x" * 500] * 10
    reply, _ = await _netcat(service, chunks, half_close=True)
    assert reply == b"error: paste too large: the limit is 1000 bytes\n"
    assert service.store.pastes == {}


async def test_token_reply_has_second_line(service, autojump_clock):
    reply, _ = await _netcat(service, [b"#!ncpaste token=1\nsecret-free text\n"], half_close=True)
    url, token_line, end = reply.decode().split("\n")
    assert url.startswith("https://paste.example.com/") and end == ""
    assert token_line.startswith("token: ") and len(token_line) > 20


async def test_http_pipelined_requests_on_memory_stream(service, autojump_clock):
    reply, _ = await _netcat(service, [b"pipelined\n"], half_close=True)
    key = reply.decode().strip().rsplit("/", 1)[1]
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle_http, server_side)
        request = f"GET /{key} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        await client.send_all(request * 3 + b"GET /nope123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_until_closed(client)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.count(b"pipelined\n") == 3
    assert answer.endswith(b"error: no such paste (it may have expired)\n")


async def test_http_keepalive_idle_connection_is_closed(service, autojump_clock):
    client, server_side = trio.testing.memory_stream_pair()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle_http, server_side)
        await client.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok\n")
    assert trio.current_time() - started == pytest.approx(service.config.http_keepalive_timeout_s, abs=0.01)


async def test_http_body_stall_is_timed_out(service, autojump_clock):
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.handle_http, server_side)
        await client.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        answer = await read_until_closed(client)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"error: request body stalled for 2 s\n")
    assert service.store.pastes == {}
