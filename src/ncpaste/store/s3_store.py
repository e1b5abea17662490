"""Pastes on S3-compatible object storage, shared by any number of nodes.

Each node is stateless apart from a small local LMDB (its pool of
pre-generated keys and the live pastes it has open). The bucket holds, under
the configured prefix:

``p/KEY``                        one object per paste: the zstd frame, with
                                 its metadata in ``x-amz-meta-*`` headers
``x/HOUR/DUE.ID.m``              expiry markers, in time order: a sweep lists
                                 only what is due. The body names the pastes
                                 (KEY GEN DUE per line): the pastes created
                                 together by one node share one marker
``x/HOUR/DUE.GEN.KEY.c``         a spent claim to remove later
``c/KEY.GEN``                    a claim: the right to remove that one
                                 generation of KEY
``l/KEY/SEQ``                    the committed groups of an open live paste

Uniqueness comes from the engine, never from us: a paste is written with
``If-None-Match: *``, so of two nodes creating the same name exactly one
wins (a random key that loses is simply replaced by the next one from the
pool; for an alias, losing means it is taken). Every paste written carries a
random generation (GEN, in its metadata), so two pastes that ever had the
same name are never confused. Removal works like creation: whoever creates
the claim object ``c/KEY.GEN`` is the only one that may
delete that generation. So burn after read has exactly one reader across
all nodes, a delete and a sweep on two nodes never both act, and a node
that read an old generation can never delete the paste that replaced it.

A URL is handed out only after the engine acknowledged the PUT. The expiry
marker is written before the paste, so no crash can leave a paste that is
never swept; an entry whose paste never landed is skipped by the sweep.
Creates that arrive together share one marker (group commit, as the
embedded store does with its fsync): under load a paste costs one PUT plus
a share of one, not two.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ncpaste.core import keys
from ncpaste.core.errors import CorruptPaste, PasteError, StorageUnavailable
from ncpaste.core.lru import ByteLRU
from ncpaste.core.paste import LiveEnd, PasteMeta
from ncpaste.store import Created, NewLivePaste, NewPaste, Removal, Restored, Scanned, StoredPaste, StoreStats, codec, records
from ncpaste.store.lmdb_env import open_environment
from ncpaste.store.records import MAX_LIVE_GROUP_BYTES, Packed
from ncpaste.store.s3_client import LIST_PAGE_KEYS, Listed, PreconditionFailed, S3Client, S3Object

log = logging.getLogger(__name__)

PASTE_PREFIX = "p/"
MARKER_PREFIX = "x/"
CLAIM_PREFIX = "c/"
LIVE_PREFIX = "l/"
# Metadata format version, for a future change of layout.
META_VERSION = "1"
# A spent claim is kept this long after its paste was removed: any node that
# read the old generation before the removal has finished with it by then
# (one S3 call gives up after 30 s), so it cannot claim that generation again.
CLAIM_KEEP_S = 600
# A claim whose winner removed nothing within this long was abandoned (its
# node died between claim and delete); the sweep may then remove the paste.
CLAIM_LEASE_S = 300
# A random key that loses its create-only PUT is taken by another paste;
# with 69.7-bit keys even one loss means something is wrong, so a few tries.
MAX_KEY_ATTEMPTS = 8
# An expired alias is removed and claimed again; others may race for it.
MAX_ALIAS_ATTEMPTS = 4
# Markers processed at once by one sweep, and pastes of one marker at once:
# parallel HEAD/DELETE calls hide round trips without flooding the engine
# (4 x 16 stays within the client's 64 connections).
SWEEP_MARKERS_AT_ONCE = 4
SWEEP_ENTRIES_AT_ONCE = 16
# Marker writers: creates that arrive while one marker PUT is in flight go
# into the next; a few writers keep one slow PUT from holding up the rest.
MARKER_WRITERS = 4
# Pastes named by one marker: bounds its size (~50 bytes a line) and the
# work of one sweep step.
MAX_MARKER_ENTRIES = 256
# Creates waiting for a marker writer beyond this wait to enter the queue.
MAX_PENDING_MARKS = 1024
# An alias whose removal another live node claimed is looked at again then.
CLAIM_RETRY_S = 60
# One sweep call handles at most this many marker pages (1000 each); the
# next periodic sweep continues.
MAX_SWEEP_PAGES = 20
# Pages of live groups read in one call (1000 groups each, one group per
# commit interval: 0.5 s x 1000 = 8 minutes of a stream per page).
MAX_LIVE_PAGES = 1000
LIVE_GROUP_DIGITS = 10
# A group frame this small is decompressed on the event loop: cheaper than
# the hop to a worker thread.
INLINE_DECOMPRESS_BYTES = 64 * 1024
# Pastes fetched (or written, for an import) at once by an admin scan: round
# trips overlap, and at most this many bodies are held.
SCAN_FETCHES_AT_ONCE = 16
# Group objects fetched at once when a reader catches up on a live paste.
LIVE_FETCHES_AT_ONCE = 16
# The node-local cache of read pastes (compressed frames): bounded bytes,
# small items only; a hit younger than the TTL is served without asking S3,
# an older one is fetched again.
CACHE_BYTES = 64 * 1024 * 1024
CACHE_ITEM_MAX_BYTES = 1024 * 1024
# How long another node may keep serving a paste deleted elsewhere: a
# reader's view is at most this stale. Expiry is exact (checked locally).
DEFAULT_CACHE_TTL_S = 2.0
# Local pool of pre-generated keys.
POOL_DB = b"pool"
OPEN_DB = b"open"
POOL_MAP_BYTES = 64 * 1024 * 1024
REFILL_BATCH = 1000


@dataclass(slots=True)
class _Cached:
    paste: StoredPaste
    checked_ms: int


class KeyPool:
    """Pre-generated random keys in a small local LMDB (a key lost with a
    crashed node is fine: it was never handed out). Also remembers which
    live pastes this node has open, to close them after a crash."""

    def __init__(self, path: Path, *, key_length: int, target: int, new_key: Callable[[int], str] = keys.new_key):
        path.mkdir(parents=True, exist_ok=True)
        self.key_length = key_length
        self.target = target
        self._new_key = new_key
        # No fsync: losing the last keys taken means handing one out again,
        # which the create-only PUT turns into "take the next one".
        self._env = open_environment(path / "s3-node", durable=False, map_bytes=POOL_MAP_BYTES)
        self._pool = self._env.open_db(POOL_DB)
        self._open = self._env.open_db(OPEN_DB)

    def close(self) -> None:
        self._env.close()

    def take(self) -> str:
        with self._env.begin(write=True, db=self._pool) as txn:
            cursor = txn.cursor()
            # Next to a random point, not the first: see LmdbStore._key_from_pool.
            probe = self._new_key(self.key_length).encode()
            if cursor.set_range(probe) or cursor.first():
                key = bytes(cursor.key())
                cursor.delete()
                return key.decode()
        return self._new_key(self.key_length)

    def refill(self, batch: int) -> int:
        with self._env.begin(write=True, db=self._pool) as txn:
            missing = self.target - txn.stat(self._pool)["entries"]
            added = 0
            for _ in range(min(batch, max(missing, 0))):
                if txn.put(self._new_key(self.key_length).encode(), b"", overwrite=False):
                    added += 1
        return added

    def size(self) -> int:
        with self._env.begin() as txn:
            return txn.stat(self._pool)["entries"]

    def mark_open(self, key: str, is_open: bool) -> None:
        with self._env.begin(write=True, db=self._open) as txn:
            if is_open:
                txn.put(key.encode(), b"")
            else:
                txn.delete(key.encode())
        if is_open:
            self._env.sync(True)  # recovery depends on this one

    def open_keys(self) -> list[str]:
        with self._env.begin(db=self._open) as txn:
            return [bytes(name).decode() for name, _ in txn.cursor()]


def _marker_name(due_ms: int, generation: str, key: str, kind: str) -> str:
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime(due_ms / 1000))
    tail = f".{key}.{kind}" if key else f".{kind}"
    return f"{MARKER_PREFIX}{hour}/{due_ms:013d}.{generation}{tail}"


@dataclass(frozen=True, slots=True)
class _Due:
    """A marker's line: generation ``generation`` of ``key`` expires at ``due_ms``."""

    key: str
    generation: str
    due_ms: int


def _marker_body(entries: list[_Due]) -> bytes:
    return "".join(f"{e.key} {e.generation} {e.due_ms}\n" for e in entries).encode()


def _marker_entries(body: bytes) -> list[_Due]:
    entries = []
    for line in body.decode("ascii", "replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[2].isdigit() and keys.is_plausible_name(parts[0]):
            entries.append(_Due(parts[0], parts[1], int(parts[2])))
    return entries


@dataclass(eq=False)
class _PendingMark:
    due: _Due
    done: trio.Event = field(default_factory=trio.Event)
    error: PasteError | None = None


def _new_generation() -> str:
    """64 random bits: tells apart every paste ever written under one name."""
    return os.urandom(8).hex()


def _generation_of(obj: S3Object) -> str:
    return obj.meta("gen") or ""


@dataclass(frozen=True, slots=True)
class _Marker:
    name: str
    due_ms: int
    generation: str
    key: str
    kind: str

    @classmethod
    def parse(cls, name: str) -> _Marker | None:
        leaf = name.rsplit("/", 1)[-1]
        parts = leaf.split(".", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isalnum():
            return None
        if parts[2] == "m":
            return cls(name, int(parts[0]), parts[1], "", "m")
        key, _, kind = parts[2].rpartition(".")
        if not key or kind != "c":
            return None
        return cls(name, int(parts[0]), parts[1], key, kind)


def _meta_headers(meta: PasteMeta, generation: str, live_expire_s: int | None = None) -> dict[str, str]:
    headers = {
        "v": META_VERSION,
        "gen": generation,
        "created": str(meta.created_ms),
        "expires": str(meta.expires_ms),
        "size": str(meta.size),
        "checksum": meta.checksum.hex(),
        "token": meta.token_hash.hex(),
        "flags": str(meta.flags),
    }
    if live_expire_s is not None:
        headers["live-expire"] = str(live_expire_s)
    return headers


def _meta_of(obj: S3Object) -> PasteMeta:
    try:
        if obj.meta("v") != META_VERSION:
            raise ValueError("unknown metadata version")
        return PasteMeta(
            int(obj.meta("created") or ""),
            int(obj.meta("expires") or ""),
            int(obj.meta("size") or ""),
            bytes.fromhex(obj.meta("checksum") or ""),
            bytes.fromhex(obj.meta("token") or ""),
            int(obj.meta("flags") or ""),
        )
    except ValueError:
        raise CorruptPaste("stored paste is damaged") from None


class S3Store:
    """``PasteStore`` on an S3 bucket; many nodes may share one bucket.

    ``pool`` is the node's local state; an admin command, which creates no
    random keys and keeps no live paste open, opens the bucket without one."""

    def __init__(
        self,
        client: S3Client,
        pool: KeyPool | None,
        clock_ms: Callable[[], int],
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self._s3 = client
        self._node = pool
        self._clock_ms = clock_ms
        self._cache_ttl_ms = int(cache_ttl_s * 1000)
        self._cache: ByteLRU[_Cached] = ByteLRU(cache_bytes, CACHE_ITEM_MAX_BYTES, lambda c: len(c.paste.frame))
        self._marks, self._marks_queued = trio.open_memory_channel[_PendingMark](MAX_PENDING_MARKS)

    def _pool(self) -> KeyPool:
        if self._node is None:
            raise RuntimeError("this S3 store was opened for admin commands: it has no node key pool")
        return self._node

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The marker writers; start in a nursery before use."""
        async with trio.open_nursery() as writers:
            for _ in range(MARKER_WRITERS):
                writers.start_soon(self._write_markers)
            task_status.started()

    async def _write_markers(self) -> None:
        while True:
            batch = [await self._marks_queued.receive()]
            while len(batch) < MAX_MARKER_ENTRIES:
                try:
                    batch.append(self._marks_queued.receive_nowait())
                except trio.WouldBlock:
                    break
            error: PasteError | None = None
            try:
                await self._write_marker([pending.due for pending in batch])
            except PasteError as exc:
                error = exc
            except Exception:
                log.exception("writing an expiry marker failed")
                error = StorageUnavailable("storage unavailable")
            for pending in batch:
                pending.error = error
                pending.done.set()

    async def _mark(self, due: _Due) -> None:
        """Durably note when this paste is due, before the paste is written."""
        pending = _PendingMark(due)
        await self._marks.send(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error

    async def _write_marker(self, entries: list[_Due]) -> None:
        due = min(entry.due_ms for entry in entries)
        await self._s3.put(_marker_name(due, _new_generation(), "", "m"), _marker_body(entries))

    # -- create ----------------------------------------------------------------

    async def create(self, paste: NewPaste) -> Created:
        return await self._create(await records.pack_off_loop(paste))

    async def create_live(self, paste: NewLivePaste) -> Created:
        return await self._create(records.pack_live(paste))

    async def _create(self, paste: Packed) -> Created:
        now = self._clock_ms()
        meta = paste.meta(now)
        live_expire_s = paste.expire_s if paste.is_live else None
        if paste.alias is not None:
            key = await self._create_alias(paste.alias, paste.frame, meta, live_expire_s)
        else:
            key = await self._create_random(paste.frame, meta, live_expire_s)
        if paste.is_live:
            await trio.to_thread.run_sync(self._pool().mark_open, key, True)
        return Created(key, now, meta.expires_ms, len(paste.frame), paste.size)

    async def _create_random(self, frame: bytes, meta: PasteMeta, live_expire_s: int | None) -> str:
        for _ in range(MAX_KEY_ATTEMPTS):
            # Inline: an unsynced LMDB write of a few pages, no fsync (see
            # KeyPool), cheaper than the hop to a worker thread.
            key = self._pool().take()
            if await self._put_new(key, frame, meta, live_expire_s):
                return key
            log.warning("a pooled key was taken already; trying the next one")
        raise StorageUnavailable("storage unavailable: could not find a free key")

    async def _create_alias(self, alias: str, frame: bytes, meta: PasteMeta, live_expire_s: int | None) -> str:
        if await self._put_named(alias, frame, meta, live_expire_s):
            return alias
        raise records.alias_taken(alias)

    async def _put_named(self, key: str, frame: bytes, meta: PasteMeta, live_expire_s: int | None) -> bool:
        """Write under a chosen name (an alias, a restored paste); False if a
        live paste holds it."""
        for _ in range(MAX_ALIAS_ATTEMPTS):
            if await self._put_new(key, frame, meta, live_expire_s):
                return True
            existing = await self._s3.head(PASTE_PREFIX + key)
            if existing is None:
                continue  # removed in between: try again
            try:
                if _meta_of(existing).expires_ms > self._clock_ms():
                    return False
            except CorruptPaste:
                return False  # unreadable: never overwritten
            # Expired but not swept yet: the name is free once that
            # generation is removed (by us, or by whoever claimed it).
            await self._remove(key, _generation_of(existing), abandoned_ok=True)
        return False

    async def _put_new(self, key: str, frame: bytes, meta: PasteMeta, live_expire_s: int | None) -> bool:
        """Marker first, then the create-only PUT of a new generation; False
        if the name is taken."""
        generation = _new_generation()
        await self._mark(_Due(key, generation, meta.expires_ms))
        headers = _meta_headers(meta, generation, live_expire_s)
        try:
            await self._s3.put(PASTE_PREFIX + key, frame, meta=headers, create_only=True, content_type="application/zstd")
            return True
        except PreconditionFailed:
            # Our own earlier attempt may have landed before a retry: the
            # generation tells whose paste is there.
            existing = await self._s3.head(PASTE_PREFIX + key)
            if existing is not None and _generation_of(existing) == generation:
                return True
            return False  # the marker's line for it is skipped by the sweep

    # -- read ------------------------------------------------------------------

    async def get(self, key: str) -> StoredPaste | None:
        now = self._clock_ms()
        cached = self._cache.get(key)
        if cached is not None:
            if cached.paste.meta.expires_ms <= now:
                self._forget(key)
                return None
            if now - cached.checked_ms < self._cache_ttl_ms:
                return cached.paste
        # A whole GET, not a conditional one: an ETag is the body's MD5, so a
        # paste deleted and written again under its alias with the same
        # bytes would answer 304 while its metadata (expiry) changed.
        obj = await self._s3.get(PASTE_PREFIX + key)
        if obj is None:
            self._forget(key)
            return None
        paste = StoredPaste(key, _meta_of(obj), obj.body)
        if paste.meta.expires_ms <= now:
            self._forget(key)
            return None
        self._remember(key, paste, now)
        return paste

    async def _fetch(self, key: str) -> tuple[StoredPaste, str] | None:
        """The paste as S3 has it now (bypassing the cache), and its generation."""
        obj = await self._s3.get(PASTE_PREFIX + key)
        if obj is None:
            return None
        paste = StoredPaste(key, _meta_of(obj), obj.body)
        return (paste, _generation_of(obj)) if paste.meta.expires_ms > self._clock_ms() else None

    def _remember(self, key: str, paste: StoredPaste, now: int) -> None:
        if paste.meta.is_open or paste.meta.burn:
            self._forget(key)
            return
        self._cache.put(key, _Cached(paste, now))

    def _forget(self, key: str) -> None:
        self._cache.drop(key)

    # -- remove ----------------------------------------------------------------

    async def take(self, key: str) -> StoredPaste | None:
        found = await self._fetch(key)
        if found is None or not await self._remove(key, found[1]):
            return None  # another reader, on any node, got it
        return found[0]

    async def delete(self, key: str, token: str) -> None:
        found = await self._fetch(key)
        if found is None:
            raise records.no_such_paste()
        if not keys.token_matches(token, found[0].meta.token_hash):
            raise records.wrong_token()
        if not await self._remove(key, found[1]):
            raise records.no_such_paste()

    async def _remove(self, key: str, generation: str, *, abandoned_ok: bool = False) -> bool:
        """Claim ``generation`` of ``key`` and delete it; False if someone
        else holds the claim. ``abandoned_ok``: a claim older than the lease
        whose paste is still there was abandoned; remove anyway."""
        claim = f"{CLAIM_PREFIX}{key}.{generation}"
        now = self._clock_ms()
        stamp = f"{now} {os.urandom(8).hex()}"
        try:
            await self._s3.put(claim, stamp.encode(), create_only=True)
        except PreconditionFailed:
            held = await self._s3.get(claim)
            mine = held is not None and held.body == stamp.encode()
            if not mine:
                if not abandoned_ok or held is None or not _claim_abandoned(held.body, now):
                    return False
                log.warning("a claim was abandoned (its node stopped mid-removal); removing the paste")
        self._forget(key)
        await self._s3.put(_marker_name(now + CLAIM_KEEP_S * 1000, generation, key, "c"), b"")
        await self._s3.delete(PASTE_PREFIX + key)
        return True

    # -- expiry ----------------------------------------------------------------

    async def sweep_expired(self) -> int:
        """Act on every due marker: list ``x/`` from the start (markers sort
        by due time) and stop at the first one not yet due. Sweepers on many
        nodes may run at once: claims make them harmless to each other."""
        removed = 0
        start_after = ""
        limiter = trio.CapacityLimiter(SWEEP_MARKERS_AT_ONCE)
        for _ in range(MAX_SWEEP_PAGES):
            now = self._clock_ms()
            listed = await self._s3.list(MARKER_PREFIX, start_after=start_after)
            markers = [m for m in (_Marker.parse(item.key) for item in listed) if m is not None]
            due = [m for m in markers if m.due_ms <= now]
            random.shuffle(due)  # several nodes sweeping: fewer collisions
            results: list[int] = []

            async def handle(marker: _Marker) -> None:
                async with limiter:
                    results.append(await self._handle_marker(marker, now))

            async with trio.open_nursery() as nursery:
                for marker in due:
                    nursery.start_soon(handle, marker)
            removed += sum(results)
            if not listed or len(due) < len(markers) or len(listed) < 1000:
                break
            start_after = listed[-1].key
        return removed

    async def _handle_marker(self, marker: _Marker, now: int) -> int:
        if marker.kind == "c":
            await self._s3.delete(f"{CLAIM_PREFIX}{marker.key}.{marker.generation}")
            await self._s3.delete(marker.name)
            return 0
        obj = await self._s3.get(marker.name)
        if obj is None:
            return 0  # another node's sweep finished it
        entries = _marker_entries(obj.body)
        later = [entry for entry in entries if entry.due_ms > now]
        results: list[int] = []
        limiter = trio.CapacityLimiter(SWEEP_ENTRIES_AT_ONCE)

        async def expire(entry: _Due) -> None:
            async with limiter:
                results.append(await self._expire(entry, now, later))

        async with trio.open_nursery() as nursery:
            for entry in entries:
                if entry.due_ms <= now:
                    nursery.start_soon(expire, entry)
        if later:  # written before this marker goes: nothing is ever unmarked
            await self._write_marker(later)
        await self._s3.delete(marker.name)
        return sum(results)

    async def _expire(self, entry: _Due, now: int, later: list[_Due]) -> int:
        """Remove one due paste if it is still that generation and expired;
        what must be looked at again goes into ``later``."""
        obj = await self._s3.head(PASTE_PREFIX + entry.key)
        if obj is None or _generation_of(obj) != entry.generation:
            return 0  # gone, never landed, or a newer paste under that name
        meta = _meta_of(obj)
        if meta.expires_ms > now:
            # Its expiry moved (a live paste finished, or clocks differ).
            later.append(_Due(entry.key, entry.generation, meta.expires_ms))
            return 0
        if not meta.is_alias:
            # A random key is never written again (a new paste would need the
            # same 69.7-bit key drawn anew), so no newer generation can be
            # deleted by mistake: sweepers on several nodes may both delete,
            # which is harmless, and no claim is needed.
            self._forget(entry.key)
            await self._s3.delete(PASTE_PREFIX + entry.key)
            return 1
        if await self._remove(entry.key, entry.generation, abandoned_ok=True):
            return 1
        if await self._s3.head(PASTE_PREFIX + entry.key) is not None:
            # Someone else holds the claim and has not removed it yet.
            later.append(_Due(entry.key, entry.generation, now + CLAIM_RETRY_S * 1000))
        return 0

    # -- key pool and stats ------------------------------------------------------

    async def refill_pool(self) -> int:
        async def step() -> int:
            return await trio.to_thread.run_sync(self._pool().refill, REFILL_BATCH)

        return await records.in_batches(step, REFILL_BATCH)

    async def stats(self) -> StoreStats:
        # Counting a bucket means listing all of it; that is the engine's job
        # (its own metrics), not something to do every few seconds.
        pool = -1 if self._node is None else await trio.to_thread.run_sync(self._node.size)
        return StoreStats(pastes=-1, pool_keys=pool, expiry_entries=-1, disk_bytes=-1, map_bytes=0)

    async def ping(self) -> None:
        await self._s3.check_bucket()

    # -- live pastes --------------------------------------------------------------

    def _group_name(self, key: str, seq: int) -> str:
        return f"{LIVE_PREFIX}{key}/{seq:0{LIVE_GROUP_DIGITS}d}"

    async def append_live(self, key: str, seq: int, data: bytes, size: int) -> None:
        head = await self._s3.head(PASTE_PREFIX + key)
        if head is None or not _meta_of(head).is_open:
            raise records.live_paste_gone()
        frame = await trio.to_thread.run_sync(codec.compress, data)
        await self._s3.put(self._group_name(key, seq), frame, content_type="application/zstd")

    async def read_live(self, key: str, after_group: int = 0) -> tuple[bytes, int]:
        """Groups are fetched LIVE_FETCHES_AT_ONCE at a time: a reader that
        joins a stream hours old has thousands to catch up on."""
        prefix = f"{LIVE_PREFIX}{key}/"
        start_after = self._group_name(key, after_group)
        parts: list[bytes] = []
        last = after_group
        limiter = trio.CapacityLimiter(LIVE_FETCHES_AT_ONCE)
        for _ in range(MAX_LIVE_PAGES):
            listed = await self._s3.list(prefix, start_after=start_after)
            names = [item.key for item in listed if item.key[len(prefix):].isdigit()]
            frames: list[bytes | None] = [None] * len(names)

            async def fetch(index: int, name: str) -> None:
                async with limiter:
                    obj = await self._s3.get(name)
                frames[index] = obj.body if obj is not None else None

            async with trio.open_nursery() as nursery:
                for index, name in enumerate(names):
                    nursery.start_soon(fetch, index, name)
            for name, frame in zip(names, frames):
                if frame is None:  # the paste finished meanwhile: its groups are gone
                    return b"".join(parts), last
                if len(frame) <= INLINE_DECOMPRESS_BYTES:
                    parts.append(codec.decompress(frame, MAX_LIVE_GROUP_BYTES))
                else:
                    parts.append(await trio.to_thread.run_sync(codec.decompress, frame, MAX_LIVE_GROUP_BYTES))
                last = int(name[len(prefix):])
            if len(listed) < 1000:
                break
            start_after = listed[-1].key
        return b"".join(parts), last

    async def finish_live(self, key: str, end: LiveEnd) -> bool:
        head = await self._s3.head(PASTE_PREFIX + key)
        kept = head is not None and _meta_of(head).is_open  # else deleted while open
        if head is not None and kept:
            generation = _generation_of(head)
            body, _ = await self.read_live(key)
            if body:
                expire_s = int(head.meta("live-expire") or "0")
                final, frame = await trio.to_thread.run_sync(
                    records.finished, _meta_of(head), body, expire_s, end, self._clock_ms()
                )
                await self._write_marker([_Due(key, generation, final.expires_ms)])
                # Overwrite, same generation: this node created the open paste
                # and is its only writer.
                await self._s3.put(
                    PASTE_PREFIX + key, frame, meta=_meta_headers(final, generation), content_type="application/zstd"
                )
                self._forget(key)
            else:  # nothing was written: no empty paste is kept
                await self._remove(key, generation)
                kept = False
        await self._drop_groups(key)
        await trio.to_thread.run_sync(self._pool().mark_open, key, False)
        return kept

    async def _drop_groups(self, key: str) -> None:
        limiter = trio.CapacityLimiter(LIVE_FETCHES_AT_ONCE)

        async def delete(name: str) -> None:
            async with limiter:
                await self._s3.delete(name)

        for _ in range(MAX_LIVE_PAGES):
            listed = await self._s3.list(f"{LIVE_PREFIX}{key}/")
            if not listed:
                return
            async with trio.open_nursery() as nursery:
                for item in listed:
                    nursery.start_soon(delete, item.key)

    async def recover_live(self) -> int:
        left_open = await trio.to_thread.run_sync(self._pool().open_keys)
        for key in left_open:
            await self.finish_live(key, LiveEnd.INCOMPLETE)
        return len(left_open)


    # -- what the admin commands add ---------------------------------------------

    async def remove(self, key: str) -> Removal | None:
        head = await self._s3.head(PASTE_PREFIX + key)
        if head is None:
            return None
        try:
            meta: PasteMeta | None = _meta_of(head)
        except CorruptPaste:
            meta = None
        if meta is not None and meta.expires_ms <= self._clock_ms():
            return None  # gone for every reader already; the sweep removes it
        if not await self._remove(key, _generation_of(head), abandoned_ok=True):
            return None  # a reader's burn or another delete got there first
        if meta is None or meta.is_open:
            await self._drop_groups(key)
        return Removal.REMOVED if meta is not None else Removal.DAMAGED

    async def scan(self, *, bodies: bool) -> AsyncIterator[Scanned]:
        """Every paste object as listed (S3 has no snapshot: one created or
        removed meanwhile may or may not be seen), SCAN_FETCHES_AT_ONCE
        fetched at a time so memory stays bounded."""
        start_after = ""
        while True:
            listed = await self._s3.list(PASTE_PREFIX, start_after=start_after)
            for first in range(0, len(listed), SCAN_FETCHES_AT_ONCE):
                for found in await self._look_at(listed[first : first + SCAN_FETCHES_AT_ONCE], bodies):
                    if found is not None:
                        yield found
            if len(listed) < LIST_PAGE_KEYS:
                return
            start_after = listed[-1].key

    async def _look_at(self, items: list[Listed], bodies: bool) -> list[Scanned | None]:
        found: list[Scanned | None] = [None] * len(items)

        async def one(index: int, item: Listed) -> None:
            name = item.key
            obj = await (self._s3.get(name) if bodies else self._s3.head(name))
            if obj is None:
                return  # removed since the listing
            try:
                meta: PasteMeta | None = _meta_of(obj)
            except CorruptPaste:
                meta = None
            frame = obj.body if bodies and meta is not None else None
            found[index] = Scanned(name[len(PASTE_PREFIX) :].encode(), meta, item.size, frame)

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                nursery.start_soon(one, index, item)
        return found

    async def restore(self, pastes: Sequence[Restored]) -> list[bool]:
        results = [False] * len(pastes)
        limiter = trio.CapacityLimiter(SCAN_FETCHES_AT_ONCE)

        async def one(index: int, paste: Restored) -> None:
            async with limiter:
                key, meta, frame = await trio.to_thread.run_sync(records.pack_restored, paste)
                results[index] = await self._put_named(key, frame, meta, None)

        async with trio.open_nursery() as nursery:
            for index, paste in enumerate(pastes):
                nursery.start_soon(one, index, paste)
        return results


def _claim_abandoned(body: bytes, now: int) -> bool:
    stamp = body.split(b" ", 1)[0]
    return stamp.isdigit() and now - int(stamp) > CLAIM_LEASE_S * 1000
