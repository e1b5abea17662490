"""The waits of many HTTP connections, watched by one task.

Each HTTP connection bounds every wait (for a request head, between
requests, for a send to finish) with its one deadline. Moving a trio cancel
scope's deadline re-files the scope in trio's deadline heap, and the run
loop works through that heap each turn: at three moves per request over 64
keep-alive connections that cost a tenth of a GET's time (bench/ceiling_h11.py
beside ncpaste, with the moves taken out: 0.73 -> 0.81 of the ceiling). So a
connection keeps its deadline as a plain number, and one task looks at all
of them every ``TICK_S`` and cancels the scope of each whose time has
passed: a wait ends between its timeout and ``TICK_S`` after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

# How late a timed-out wait may end (and how often the watcher wakes): a
# quarter of a second against timeouts of seconds.
TICK_S = 0.25


class Deadline:
    """One connection's deadline: ``due`` (trio time; inf: no limit) and the
    scope its work runs in, cancelled once ``due`` has passed."""

    __slots__ = ("due", "scope")

    def __init__(self) -> None:
        self.due = math.inf
        self.scope = trio.CancelScope()

    def wait(self, seconds: float) -> None:
        """What comes next may take ``seconds`` at most."""
        self.due = trio.current_time() + seconds

    def clear(self) -> None:
        self.due = math.inf


class Deadlines:
    """The deadlines of the connections open now; ``run`` enforces them."""

    def __init__(self) -> None:
        self._watched: set[Deadline] = set()

    @contextmanager
    def watching(self) -> Iterator[Deadline]:
        """A deadline for the code in the ``with`` block, which runs in its
        scope (a passed deadline cancels it, as ``trio.move_on_at`` would)."""
        deadline = Deadline()
        self._watched.add(deadline)
        try:
            with deadline.scope:
                yield deadline
        finally:
            self._watched.discard(deadline)

    def expire(self, now: float) -> None:
        for deadline in self._watched:
            if deadline.due <= now:
                deadline.scope.cancel()

    async def run(self) -> None:
        """Until cancelled: every ``TICK_S``, end the waits that are overdue."""
        while True:
            await trio.sleep(TICK_S)
            self.expire(trio.current_time())
