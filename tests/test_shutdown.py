"""Graceful shutdown: stop accepting, let in-flight pastes finish, then stop."""

from __future__ import annotations

from functools import partial

import trio

from ncpaste.net.server import serve

from conftest import fetch, key_of


async def test_in_flight_paste_finishes_during_grace_and_new_ones_are_refused(config, clock):
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(serve, config, clock_ms=clock))
        stream = await trio.open_tcp_stream("127.0.0.1", running.tcp_port)
        await stream.send_all(b"first half ")
        running.stop()
        await trio.sleep(0.1)  # the listeners close
        try:
            late = await trio.open_tcp_stream("127.0.0.1", running.tcp_port)
        except OSError:
            late = None
        assert late is None, "a new connection was accepted after stop()"
        await stream.send_all(b"second half\n")
        await stream.send_eof()
        reply = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                reply += chunk
        await stream.aclose()
        key = key_of(reply)
    # The server has exited; the paste it acknowledged is in the store.
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(serve, config, clock_ms=clock))
        got = await fetch(running.http_port, "GET", "/" + key)
        assert got.body == b"first half second half\n"
        running.stop()


async def test_grace_is_bounded(config, clock):
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(serve, config, clock_ms=clock))
        stream = await trio.open_tcp_stream("127.0.0.1", running.tcp_port)
        await stream.send_all(b"never finishes")  # and never goes quiet for long
        stopped_at = trio.current_time()
        running.stop()

        async def keep_talking() -> None:
            try:
                while True:
                    await stream.send_all(b".")
                    await trio.sleep(0.05)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        nursery.start_soon(keep_talking)
        with trio.fail_after(config.shutdown_grace_s + 3):
            while True:
                try:
                    if not await stream.receive_some(4096):
                        break
                except trio.BrokenResourceError:
                    break
        elapsed = trio.current_time() - stopped_at
        nursery.cancel_scope.cancel()
    assert config.shutdown_grace_s - 0.2 <= elapsed <= config.shutdown_grace_s + 2
