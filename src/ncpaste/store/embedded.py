"""The embedded LMDB store seen from trio: group commit and worker threads.

Creates queue up on a channel; one writer task drains whatever is waiting into
a single LMDB write transaction (one fsync for many pastes) and wakes each
waiter once its paste is durable. Every write runs in a worker thread behind a
limiter of one, so the event loop never waits on a disk and LMDB never sees two
writers from this process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from ncpaste.core.errors import PasteError
from ncpaste.core.paste import LiveEnd
from ncpaste.store import Created, NewLivePaste, NewPaste, Removal, Restored, Scanned, StoredPaste, StoreStats, codec, records
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.records import Packed

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Pending creates beyond this make new pastes wait to enter the queue
# (backpressure instead of unbounded memory).
MAX_PENDING_CREATES = 1024
# One transaction holds at most this many pastes / bytes, so one commit's
# latency stays bounded however deep the queue.
MAX_BATCH_ITEMS = 256
MAX_BATCH_BYTES = 32 * 1024 * 1024
# A sweep removes at most this many pastes per transaction, so creates and
# burns interleave with a big sweep instead of waiting for all of it.
SWEEP_BATCH = 2000
REFILL_BATCH = 1000


@dataclass(eq=False)
class _PendingCreate:
    paste: Packed
    done: trio.Event = field(default_factory=trio.Event)
    result: Created | PasteError | None = None


class EmbeddedStore:
    """Async ``PasteStore`` over a synchronous ``LmdbStore``.

    ``run`` is the writer task; start it in a nursery before use.
    """

    def __init__(self, store: LmdbStore, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._send, self._receive = trio.open_memory_channel[_PendingCreate](MAX_PENDING_CREATES)
        self._writer = trio.CapacityLimiter(1)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            while True:
                first = await self._receive.receive()
                batch = [first]
                size = len(first.paste.frame)
                while len(batch) < MAX_BATCH_ITEMS and size < MAX_BATCH_BYTES:
                    try:
                        item = self._receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    batch.append(item)
                    size += len(item.paste.frame)
                await self._commit(batch)

    async def _commit(self, batch: list[_PendingCreate]) -> None:
        try:
            results = await self._in_writer(
                self._store.create_batch, [item.paste for item in batch], self._clock_ms()
            )
        except Exception:
            log.exception("commit of %d pastes failed", len(batch))
            results = [PasteError("internal error: the paste was not stored")] * len(batch)
        for item, result in zip(batch, results):
            item.result = result
            item.done.set()

    async def _in_writer(self, fn: Callable[..., _T], *args: object) -> _T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._writer)

    async def create(self, paste: NewPaste) -> Created:
        # Compressed before it joins the queue: the writer's critical section
        # holds only the LMDB write itself.
        return await self._queue(await records.pack_off_loop(paste))

    async def create_live(self, paste: NewLivePaste) -> Created:
        return await self._queue(records.pack_live(paste))

    async def _queue(self, paste: Packed) -> Created:
        pending = _PendingCreate(paste)
        await self._send.send(pending)
        await pending.done.wait()
        if isinstance(pending.result, PasteError):
            raise pending.result
        assert pending.result is not None
        return pending.result

    async def get(self, key: str) -> StoredPaste | None:
        # An LMDB read is a lock-free look-up in a memory map: cheaper inline
        # than the round trip to a worker thread.
        return self._store.get(key, self._clock_ms())

    async def take(self, key: str) -> StoredPaste | None:
        return await self._in_writer(self._store.take, key, self._clock_ms())

    async def delete(self, key: str, token: str) -> None:
        await self._in_writer(self._store.delete, key, token, self._clock_ms())

    async def sweep_expired(self) -> int:
        async def step() -> int:
            return await self._in_writer(self._store.sweep_expired, self._clock_ms(), SWEEP_BATCH)

        return await records.in_batches(step, SWEEP_BATCH)

    async def refill_pool(self) -> int:
        async def step() -> int:
            return await self._in_writer(self._store.refill_pool, REFILL_BATCH)

        return await records.in_batches(step, REFILL_BATCH)

    async def append_live(self, key: str, seq: int, data: bytes, size: int) -> None:
        frame = await trio.to_thread.run_sync(codec.compress, data)
        await self._in_writer(self._store.append_live, key, seq, frame, size)

    async def read_live(self, key: str, after_group: int = 0) -> tuple[bytes, int]:
        return await trio.to_thread.run_sync(self._store.read_live, key, after_group)

    async def finish_live(self, key: str, end: LiveEnd) -> bool:
        return await self._in_writer(self._store.finish_live, key, end, self._clock_ms()) is not None

    async def recover_live(self) -> int:
        return await self._in_writer(self._store.recover_open_live, self._clock_ms())

    async def stats(self) -> StoreStats:
        return await trio.to_thread.run_sync(self._store.stats)

    async def ping(self) -> None:
        self._store.ping()

    # -- what the admin commands add ------------------------------------------

    async def remove(self, key: str) -> Removal | None:
        return await self._in_writer(self._store.remove, key, self._clock_ms())

    async def scan(self, *, bodies: bool) -> AsyncIterator[Scanned]:
        # One snapshot read inline: a scan is an admin command's whole job,
        # and LMDB reads are look-ups in a memory map.
        for found in self._store.scan(bodies=bodies):
            yield found

    async def restore(self, pastes: Sequence[Restored]) -> list[bool]:
        packed = await trio.to_thread.run_sync(lambda: [records.pack_restored(paste) for paste in pastes])
        return await self._in_writer(self._store.restore_batch, packed, self._clock_ms())
