"""The embedded LMDB store seen from trio: one writer thread, group commit.

Every write runs in one long-lived thread that owns LMDB's write side, so the
event loop never waits on a disk and LMDB never sees two writers from this
process. Creates queue up for it; it takes whatever is waiting into a single
write transaction (one fsync for many pastes) and wakes each waiter once its
paste is durable, with one wake-up of the event loop per transaction.

The thread and not a writer task: a task that hands each transaction to a
worker thread costs the loop several turns per commit (the task's wake-up,
the hand-over, the limiter, the report back), which is most of what a paste
costs when pastes come one at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from ncpaste.core.errors import PasteError, StorageUnavailable
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


@dataclass(eq=False)
class _Job:
    """Any other write: one call in the writer thread, its outcome for the caller."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


_STOP = object()  # the last item of the writer's queue


class EmbeddedStore:
    """Async ``PasteStore`` over a synchronous ``LmdbStore``.

    ``run`` starts the writer thread and stops it when cancelled; start it in
    a nursery before use.
    """

    def __init__(self, store: LmdbStore, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._jobs: queue.SimpleQueue[_PendingCreate | _Job | object] = queue.SimpleQueue()
        self._room = trio.Semaphore(MAX_PENDING_CREATES)
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopped = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._token = trio.lowlevel.current_trio_token()
        thread = threading.Thread(target=self._write_loop, name="ncpaste-writer", daemon=True)
        thread.start()
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            # Whatever was queued before the stop is still written and answered.
            self._stopped = True
            self._jobs.put(_STOP)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join)

    # -- the writer thread ----------------------------------------------------

    def _write_loop(self) -> None:
        carried: object | None = None
        while True:
            job = carried if carried is not None else self._jobs.get()
            carried = None
            if isinstance(job, _PendingCreate):
                batch, carried = self._gather(job)
                self._commit(batch)
            elif isinstance(job, _Job):
                self._run_job(job)
            else:
                return  # _STOP

    def _gather(self, first: _PendingCreate) -> tuple[list[_PendingCreate], object | None]:
        """``first`` and the creates queued behind it, up to one transaction's
        worth; the first other job met is carried over to run next."""
        batch = [first]
        size = len(first.paste.frame)
        while len(batch) < MAX_BATCH_ITEMS and size < MAX_BATCH_BYTES:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(job, _PendingCreate):
                return batch, job
            batch.append(job)
            size += len(job.paste.frame)
        return batch, None

    def _commit(self, batch: list[_PendingCreate]) -> None:
        results: Sequence[Created | PasteError]
        try:
            results = self._store.create_batch([item.paste for item in batch], self._clock_ms())
        except Exception:
            log.exception("commit of %d pastes failed", len(batch))
            results = [PasteError("internal error: the paste was not stored")] * len(batch)
        for item, result in zip(batch, results):
            item.result = result
        self._wake(self._created, batch)

    def _created(self, batch: list[_PendingCreate]) -> None:
        for item in batch:
            self._room.release()
            item.done.set()

    def _run_job(self, job: _Job) -> None:
        try:
            job.result = job.fn(*job.args)
        except BaseException as exc:  # the caller gets it, as from a call of its own
            job.error = exc
        self._wake(job.done.set)

    def _wake(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass  # the server is gone; nobody waits any more

    # -- the event loop's side ------------------------------------------------

    async def _in_writer(self, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)`` in the writer thread. Once queued it runs to the end
        and its caller waits for it even if cancelled, as
        ``trio.to_thread.run_sync`` does."""
        self._check_running()
        job = _Job(fn, args)
        self._jobs.put(job)
        with trio.CancelScope(shield=True):
            await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _check_running(self) -> None:
        if self._stopped:
            raise StorageUnavailable("the store is shutting down: try again in a moment")

    async def create(self, paste: NewPaste) -> Created:
        # Compressed before it joins the queue: the writer's critical section
        # holds only the LMDB write itself.
        return await self._queue(await records.pack_off_loop(paste))

    async def create_live(self, paste: NewLivePaste) -> Created:
        return await self._queue(records.pack_live(paste))

    async def _queue(self, paste: Packed) -> Created:
        self._check_running()
        try:
            self._room.acquire_nowait()  # no turn of the loop while there is room
        except trio.WouldBlock:
            await self._room.acquire()
        pending = _PendingCreate(paste)
        self._jobs.put(pending)
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
