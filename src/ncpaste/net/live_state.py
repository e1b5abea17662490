"""The state of open live pastes in this process, shared by writers and readers.

``LivePaste`` is one open paste (what is pending, committed, and the tail in
memory for readers that keep up); ``LiveRegistry`` is the process's open
pastes and how many each client holds. No I/O here beyond trio events: the
writer (net/live.py) and the readers (net/http.py) drive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from ncpaste.core.errors import RateLimited
from ncpaste.core.paste import LiveEnd

# Committed bytes kept in memory per open paste for readers that keep up.
LIVE_TAIL_BYTES = 256 * 1024
# Commit before the interval when this much is waiting: bounds the memory
# of a fast writer and the size of one group.
COMMIT_GROUP_BYTES = 256 * 1024


@dataclass(eq=False)
class LivePaste:
    """One open paste, shared by its writer and its readers."""

    key: str
    #: Bytes received and validated but not yet durable.
    pending: bytearray = field(default_factory=bytearray)
    #: Bytes durable in the store (what readers may be shown).
    committed: int = 0
    #: The newest committed bytes: [tail_start, committed).
    tail: bytearray = field(default_factory=bytearray)
    tail_start: int = 0
    closed: bool = False
    #: How it ended, once closed.
    end: LiveEnd | None = None
    readers: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)
    commit_wanted: trio.Event = field(default_factory=trio.Event)

    @property
    def size(self) -> int:
        return self.committed + len(self.pending)

    def add(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= COMMIT_GROUP_BYTES:
            self.commit_wanted.set()

    def on_commit(self, data: bytes) -> None:
        del self.pending[: len(data)]
        self.tail += data
        self.committed += len(data)
        excess = len(self.tail) - LIVE_TAIL_BYTES
        if excess > 0:
            del self.tail[:excess]
            self.tail_start += excess
        self._wake()

    def close(self, end: LiveEnd) -> None:
        self.closed, self.end = True, end
        self._wake()

    def from_memory(self, position: int) -> bytes | None:
        """Committed bytes from ``position`` if still in memory, else None."""
        if position < self.tail_start:
            return None
        return bytes(self.tail[position - self.tail_start :])

    async def changed(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class LiveRegistry:
    """The open pastes of this process, and how many each client holds."""

    def __init__(self) -> None:
        self.open: dict[str, LivePaste] = {}
        self._per_client: dict[str, int] = {}

    def begin(self, client: str, limit: int) -> None:
        held = self._per_client.get(client, 0)
        if held >= limit:
            raise RateLimited(
                f"rate limited: your address has {held} live pastes open already, retry when one ends", 60
            )
        self._per_client[client] = held + 1

    def end(self, client: str) -> None:
        left = self._per_client.get(client, 1) - 1
        if left > 0:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)
