"""net/deadlines.py: many connections' waits, ended by one watcher (trio's
autojump clock: virtual time)."""

from __future__ import annotations

import trio

from ncpaste.net.deadlines import TICK_S, Deadlines


async def test_a_wait_ends_after_its_timeout_and_at_most_a_tick_later(autojump_clock):
    deadlines = Deadlines()
    ended: dict[str, float] = {}

    async def connection(name: str, seconds: float) -> None:
        start = trio.current_time()
        with deadlines.watching() as deadline:
            deadline.wait(seconds)
            await trio.sleep(1000)
        ended[name] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deadlines.run)
        async with trio.open_nursery() as connections:
            for name, seconds in (("short", 1.0), ("long", 10.0), ("odd", 2.3)):
                connections.start_soon(connection, name, seconds)
        nursery.cancel_scope.cancel()
    for name, seconds in (("short", 1.0), ("long", 10.0), ("odd", 2.3)):
        assert seconds <= ended[name] <= seconds + TICK_S, (name, ended[name])


async def test_a_wait_moved_or_cleared_in_time_does_not_end(autojump_clock):
    deadlines = Deadlines()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(deadlines.run)
        with deadlines.watching() as deadline:
            for _ in range(20):  # each step well within its wait: never ended
                deadline.wait(1.0)
                await trio.sleep(0.5)
            deadline.clear()
            await trio.sleep(60)
        assert not deadline.scope.cancelled_caught
        with deadlines.watching() as deadline:
            deadline.wait(0.1)
            await trio.sleep(1)
        assert deadline.scope.cancelled_caught
        nursery.cancel_scope.cancel()
