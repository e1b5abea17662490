"""The embedded default store: one LMDB environment, synchronous and thread-safe.

Named databases:

``pastes``  key -> record (fixed header + zstd frame, see ``codec``)
``expiry``  8-byte big-endian expiry ms + key -> b""  (ordered by expiry time)
``pool``    pre-generated key -> b""

A paste's key is taken from ``pool`` inside the same write transaction that
stores the paste, so LMDB's single-writer lock is the lock on the pool. Every
method is blocking (commits fsync): the async wrapper in ``embedded`` runs them
in worker threads.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from ncpaste.core import keys
from ncpaste.core.errors import PasteError, StorageFull, StorageUnavailable
from ncpaste.core.paste import LiveEnd, PasteMeta
from ncpaste.store import Created, Removal, Scanned, StoredPaste, StoreStats, codec, lmdb_env, records
from ncpaste.store.codec import decode_meta, encode_record, record_frame
from ncpaste.store.lmdb_env import (
    DATA_FILE,
    EXPIRY_DB,
    EXPIRY_KEY,
    LIVE_DB,
    MAX_MAP_BYTES,
    PASTES_DB,
    POOL_DB,
    open_environment,
)
from ncpaste.store.records import MAX_LIVE_GROUP_BYTES, Packed

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_EXPIRY = EXPIRY_KEY
# Live groups: key + NUL + 8-byte big-endian group number (0 is the marker).
_LIVE_SUFFIX = 9
# A fresh key collides with a live one with odds ~ pastes / 56**12; retrying a
# few times is astronomically enough, and the bound keeps the loop finite.
MAX_KEY_ATTEMPTS = 16
# LMDB reports a short write as EIO ("short write, filesystem full?" in
# mdb_page_flush), which is how a full disk or a file-size cap shows up.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO}


class _ReaderGate:
    """Lets readers in concurrently, and lets the map be resized only when no
    read transaction is open in this process (an LMDB rule). ``enter`` and
    ``leave`` are the hot path of every read: one plain lock each, no
    generator; waiting happens only while a resize is under way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._readers = 0
        self._resizing = False

    def enter(self) -> None:
        with self._lock:
            while self._resizing:
                self._changed.wait()
            self._readers += 1

    def leave(self) -> None:
        with self._lock:
            self._readers -= 1
            if not self._readers and self._resizing:
                self._changed.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            self._resizing = True
            while self._readers:
                self._changed.wait()
        try:
            yield
        finally:
            with self._lock:
                self._resizing = False
                self._changed.notify_all()


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, lmdb.DiskError):
        return True
    code = getattr(exc, "errno", None) or getattr(exc, "code", None)
    if code in _DISK_FULL_ERRNOS:
        return True
    text = str(exc)
    return any(os.strerror(n) in text for n in _DISK_FULL_ERRNOS)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A read transaction and the data dir's databases, for whole-store reads."""

    #: Values are bytes, or zero-copy memoryviews with ``buffers=True``.
    txn: lmdb.Transaction[Any]
    pastes: lmdb._Database
    expiry: lmdb._Database
    pool: lmdb._Database


class LmdbStore:
    """Synchronous LMDB store. One instance owns the environment."""

    def __init__(
        self,
        path: Path,
        *,
        key_length: int = keys.DEFAULT_KEY_LENGTH,
        pool_target: int = 1000,
        new_key: Callable[[int], str] = keys.new_key,
        readonly: bool = False,
        create: bool = True,
        lock: bool = True,
    ) -> None:
        """``readonly`` (admin reads, check, backup) and ``create=False``
        (admin changes) refuse a directory that holds no store
        (``NotADataDir``) and create nothing; ``lock=False`` only for a copy
        no other process has open (see ``open_environment``)."""
        self.path = Path(path)
        self.key_length = key_length
        self.pool_target = pool_target
        self._new_key = new_key
        self._gate = _ReaderGate()
        self._env = open_environment(self.path, readonly=readonly, create=create, lock=lock)
        self._pastes = self._env.open_db(PASTES_DB, create=not readonly)
        self._expiry = self._env.open_db(EXPIRY_DB, create=not readonly)
        self._pool = self._env.open_db(POOL_DB, create=not readonly)
        self._live_db: lmdb._Database | None
        try:
            self._live_db = self._env.open_db(LIVE_DB, create=not readonly)
        except lmdb.NotFoundError:  # read-only view of a store that never had a live paste
            self._live_db = None

    def close(self) -> None:
        self._env.close()

    # -- reads ---------------------------------------------------------------

    def get(self, key: str, now_ms: int) -> StoredPaste | None:
        raw = key.encode()
        gate = self._gate
        gate.enter()
        try:
            txn = self._env.begin(db=self._pastes)
            try:
                record = txn.get(raw)  # buffers=False: a copy that outlives the txn
            finally:
                txn.abort()  # a read: nothing to commit
        except lmdb.MapResizedError:
            resized = True
        else:
            resized = False
        finally:
            gate.leave()
        if resized:
            self._adopt_map_size()
            return self.get(key, now_ms)
        return self._live(key, record, now_ms)

    def stats(self) -> StoreStats:
        with self._gate.reading(), self._env.begin() as txn:
            pastes = txn.stat(self._pastes)["entries"]
            pool = txn.stat(self._pool)["entries"]
            expiry = txn.stat(self._expiry)["entries"]
        info = self._env.info()
        return StoreStats(
            pastes=pastes,
            pool_keys=pool,
            expiry_entries=expiry,
            disk_bytes=(info["last_pgno"] + 1) * self._env.stat()["psize"],
            map_bytes=info["map_size"],
            file_bytes=(self.path / DATA_FILE).stat().st_size,
            map_floor_bytes=lmdb_env.INITIAL_MAP_BYTES,
            commits=info["last_txnid"],
        )

    def ping(self) -> None:
        try:
            with self._gate.reading(), self._env.begin() as txn:
                txn.stat(self._pastes)
        except lmdb.Error:
            raise StorageUnavailable("storage unavailable") from None

    @contextmanager
    def snapshot(self, *, buffers: bool = False) -> Iterator[Snapshot]:
        """One read transaction over every database: what ``check``, an
        export and the admin stats read. With ``buffers`` values are
        zero-copy views valid only inside the block (a full scan must not
        copy every body). A long snapshot keeps a live writer from reusing
        the pages it sees, so the file may grow meanwhile."""
        with self._gate.reading():
            try:
                txn = self._begin_read(buffers)
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)  # a server grew the file since we opened it
                txn = self._begin_read(buffers)
            with txn:
                yield Snapshot(txn, self._pastes, self._expiry, self._pool)

    def _begin_read(self, buffers: bool) -> lmdb.Transaction[Any]:
        return self._env.begin(buffers=True) if buffers else self._env.begin()

    def scan(self, *, bodies: bool) -> Iterator[Scanned]:
        """Every record of one snapshot (see ``Scanned``); frames only with ``bodies``."""
        with self.snapshot(buffers=True) as snap:
            for raw, record in snap.txn.cursor(db=snap.pastes):
                try:
                    meta: PasteMeta | None = decode_meta(record)
                except (ValueError, struct.error):
                    meta = None
                stored = max(len(record) - codec.HEADER_BYTES, 0)
                yield Scanned(bytes(raw), meta, stored, record_frame(record) if bodies and meta else None)

    def copy_to(self, dest: Path) -> None:
        """A compacted copy of one snapshot into the empty directory ``dest``
        (LMDB's copy does not fsync: the caller does)."""
        try:
            self._env.copy(str(dest), compact=True)
        except lmdb.MapResizedError:
            # The server grew the file past our map between open and copy:
            # adopt its size and copy again (the failed attempt left an empty file).
            (dest / DATA_FILE).unlink(missing_ok=True)
            self._env.set_mapsize(0)
            self._env.copy(str(dest), compact=True)

    @staticmethod
    def _live(key: str, record: bytes | None, now_ms: int) -> StoredPaste | None:
        if record is None:
            return None
        meta = decode_meta(record)
        if meta.expires_ms <= now_ms:
            return None
        return StoredPaste(key, meta, record_frame(record))

    # -- writes --------------------------------------------------------------

    def create_batch(
        self, items: Sequence[Packed], now_ms: int
    ) -> list[Created | PasteError]:
        """Store many pastes in one transaction: one fsync for all of them.

        Each item gets its own result; an item that fails (alias taken) leaves
        nothing behind and does not fail the others.
        """

        def work(txn: lmdb.Transaction[bytes]) -> list[Created | PasteError]:
            return [self._create_one(txn, item, now_ms) for item in items]

        try:
            return self._write(work)
        except StorageFull as exc:
            return [exc for _ in items]

    def restore_batch(self, items: Sequence[tuple[str, PasteMeta, bytes]], now_ms: int) -> list[bool]:
        """Store (name, metadata, frame) items as they were exported, in one
        transaction; False for a name a live paste holds (never
        overwritten). An expired paste under it, not swept yet, is replaced
        (the name is free, as for an alias); an unreadable record is left
        for ``check``. The name leaves the pool so it is never handed out."""

        def work(txn: lmdb.Transaction[bytes]) -> list[bool]:
            return [self._restore_one(txn, key.encode(), meta, frame, now_ms) for key, meta, frame in items]

        return self._write(work)

    def _restore_one(self, txn: lmdb.Transaction[bytes], raw: bytes, meta: PasteMeta, frame: bytes, now_ms: int) -> bool:
        existing = txn.get(raw, db=self._pastes)
        if existing is not None:
            try:
                current = decode_meta(existing)
            except (ValueError, struct.error):
                return False
            if current.expires_ms > now_ms:
                return False
            self._remove(txn, raw, current)
        txn.delete(raw, db=self._pool)
        txn.put(raw, encode_record(meta, frame), db=self._pastes)
        txn.put(_EXPIRY.pack(meta.expires_ms) + raw, b"", db=self._expiry)
        return True

    def take(self, key: str, now_ms: int) -> StoredPaste | None:
        """Remove and return a live paste in one transaction."""

        def work(txn: lmdb.Transaction[bytes]) -> StoredPaste | None:
            raw = key.encode()
            record = txn.get(raw, db=self._pastes)
            paste = self._live(key, record, now_ms)
            if record is not None:
                self._remove(txn, raw, decode_meta(record))
            return paste

        return self._write(work)

    def delete(self, key: str, token: str, now_ms: int) -> None:
        def work(txn: lmdb.Transaction[bytes]) -> None:
            raw = key.encode()
            record = txn.get(raw, db=self._pastes)
            if record is None or self._live(key, record, now_ms) is None:
                raise records.no_such_paste()
            meta = decode_meta(record)
            if not keys.token_matches(token, meta.token_hash):
                raise records.wrong_token()
            self._remove(txn, raw, meta)

        self._write(work)

    def remove(self, key: str, now_ms: int) -> Removal | None:
        """An operator's delete, no token asked (see ``Removal``), or None
        when there is no such unexpired paste. Everything the paste has goes
        in one transaction: record, expiry entry, and the groups of an open
        live paste."""

        def work(txn: lmdb.Transaction[bytes]) -> Removal | None:
            raw = key.encode()
            record = txn.get(raw, db=self._pastes)
            if record is None:
                return None
            try:
                meta = decode_meta(record)
            except (ValueError, struct.error):
                # Its expiry entry, if any, is stale now; the sweeper drops those.
                txn.delete(raw, db=self._pastes)
                self._drop_live(txn, raw)
                return Removal.DAMAGED
            if meta.expires_ms <= now_ms:
                return None  # gone for every reader already; the sweeper removes it
            self._remove(txn, raw, meta)
            return Removal.REMOVED

        return self._write(work)

    def sweep_expired(self, now_ms: int, limit: int) -> int:
        """Remove up to ``limit`` expired pastes, walking the expiry index from
        its oldest entry: the cost is proportional to what expired."""

        def work(txn: lmdb.Transaction[bytes]) -> int:
            removed = 0
            cursor = txn.cursor(db=self._expiry)
            while removed < limit and cursor.first():
                entry = cursor.key()
                (expires_ms,) = _EXPIRY.unpack_from(entry)
                if expires_ms > now_ms:
                    break
                raw = entry[_EXPIRY.size :]
                record = txn.get(raw, db=self._pastes)
                # The entry may be stale (paste deleted, or the name re-used
                # by a newer paste with another expiry): remove only a match.
                if record is not None and decode_meta(record).expires_ms == expires_ms:
                    txn.delete(raw, db=self._pastes)
                cursor.delete()
                removed += 1
            return removed

        return self._write(work)

    def refill_pool(self, batch: int) -> int:
        """Add up to ``batch`` fresh keys, each checked against live pastes
        and the pool itself, without going over ``pool_target``."""

        def work(txn: lmdb.Transaction[bytes]) -> int:
            missing = self.pool_target - txn.stat(self._pool)["entries"]
            added = 0
            for _ in range(min(batch, max(missing, 0))):
                raw = self._new_key(self.key_length).encode()
                if txn.get(raw, db=self._pastes) is not None:
                    continue
                if txn.put(raw, b"", db=self._pool, overwrite=False):
                    added += 1
            return added

        return self._write(work)

    def _create_one(self, txn: lmdb.Transaction[bytes], item: Packed, now_ms: int) -> Created | PasteError:
        if item.alias is not None:
            raw = item.alias.encode()
            existing = txn.get(raw, db=self._pastes)
            if existing is not None:
                meta = decode_meta(existing)
                if meta.expires_ms > now_ms:
                    return records.alias_taken(item.alias)
                self._remove(txn, raw, meta)  # expired, not swept yet: the name is free
            txn.delete(raw, db=self._pool)  # never hand this name out as a random key
        else:
            raw = self._key_from_pool(txn)
        if item.is_live:
            # Group 0 is a marker that carries the asked expiry (for crash recovery).
            txn.put(_live_key(raw, 0), _EXPIRY.pack(item.expire_s), db=self._live_db)
        meta = item.meta(now_ms)
        txn.put(raw, encode_record(meta, item.frame), db=self._pastes)
        txn.put(_EXPIRY.pack(meta.expires_ms) + raw, b"", db=self._expiry)
        return Created(raw.decode(), now_ms, meta.expires_ms, len(item.frame), item.size)

    # -- live pastes ---------------------------------------------------------

    def append_live(self, key: str, seq: int, frame: bytes, size: int) -> None:
        """Store group ``seq`` (a zstd frame) of an open paste; its size is now ``size``."""

        def work(txn: lmdb.Transaction[bytes]) -> None:
            raw = key.encode()
            record = txn.get(raw, db=self._pastes)
            if record is None or not decode_meta(record).is_open:
                raise records.live_paste_gone()
            meta = decode_meta(record)
            grown = dataclasses.replace(meta, size=size)
            txn.put(raw, encode_record(grown, b""), db=self._pastes)
            txn.put(_live_key(raw, seq), frame, db=self._live_db)

        self._write(work)

    def read_live(self, key: str, after_group: int = 0) -> tuple[bytes, int]:
        """The committed bytes of an open paste in its groups after
        ``after_group``, and the number of the last group read."""
        raw = key.encode()
        if self._live_db is None:
            return b"", after_group
        with self._gate.reading(), self._env.begin(db=self._live_db) as txn:
            groups = [(seq, bytes(value)) for seq, value in self._live_groups(txn, raw, after_group + 1)]
        last = groups[-1][0] if groups else after_group
        return b"".join(codec.decompress(frame, MAX_LIVE_GROUP_BYTES) for _, frame in groups), last

    def finish_live(self, key: str, end: LiveEnd, now_ms: int) -> PasteMeta | None:
        """Turn an open paste's groups into one frame; expiry counts from now.
        A paste that ends with nothing in it is removed (as the netcat port
        stores no empty paste). None: it is gone (empty, or deleted while open)."""

        def work(txn: lmdb.Transaction[bytes]) -> PasteMeta | None:
            raw = key.encode()
            record = txn.get(raw, db=self._pastes)
            if record is None or not decode_meta(record).is_open:
                return None
            meta = decode_meta(record)
            groups = list(self._live_groups(txn, raw))
            marker = txn.get(_live_key(raw, 0), db=self._live_db)
            expire_s = _EXPIRY.unpack(marker)[0] if marker and len(marker) == _EXPIRY.size else 0
            body = b"".join(codec.decompress(bytes(frame), MAX_LIVE_GROUP_BYTES) for _, frame in groups)
            if not body:
                self._remove(txn, raw, meta)
                return None
            final, frame = records.finished(meta, body, expire_s, end, now_ms)
            txn.put(raw, encode_record(final, frame), db=self._pastes)
            txn.delete(_EXPIRY.pack(meta.expires_ms) + raw, db=self._expiry)
            txn.put(_EXPIRY.pack(final.expires_ms) + raw, b"", db=self._expiry)
            self._drop_live(txn, raw)
            return final

        return self._write(work)

    def open_live_keys(self) -> list[str]:
        """Keys of pastes left open (a crash): one marker each in the live db."""
        keys_found: list[str] = []
        if self._live_db is None:
            return keys_found
        with self._gate.reading(), self._env.begin(db=self._live_db) as txn:
            cursor = txn.cursor()
            if cursor.first():
                while True:
                    name = bytes(cursor.key()[: -_LIVE_SUFFIX])
                    keys_found.append(name.decode())
                    # Jump past every group of this paste.
                    if not cursor.set_range(name + b"\x01"):
                        break
        return keys_found

    def recover_open_live(self, now_ms: int) -> int:
        """Close every paste left open (by a crash) as incomplete."""
        left_open = self.open_live_keys()
        for key in left_open:
            self.finish_live(key, LiveEnd.INCOMPLETE, now_ms)
        return len(left_open)

    def _live_groups(self, txn: lmdb.Transaction[bytes], raw: bytes, first: int = 1) -> Iterator[tuple[int, bytes]]:
        """(seq, frame) of the data groups (seq >= first >= 1) of one open paste."""
        cursor = txn.cursor(db=self._live_db)
        if not cursor.set_range(_live_key(raw, max(first, 1))):
            return
        prefix = raw + b"\x00"
        for name, value in cursor:
            if not name.startswith(prefix) or len(name) != len(prefix) + 8:
                break
            yield struct.unpack(">Q", name[-8:])[0], value

    def _drop_live(self, txn: lmdb.Transaction[bytes], raw: bytes) -> None:
        cursor = txn.cursor(db=self._live_db)
        prefix = raw + b"\x00"
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix) and len(cursor.key()) == len(prefix) + 8:
                if not cursor.delete():
                    break

    def _key_from_pool(self, txn: lmdb.Transaction[bytes]) -> bytes:
        cursor = txn.cursor(db=self._pool)
        # Take the pooled key next to a random point, not the smallest one:
        # always taking the first would skew handed-out keys towards the
        # low end of the key space and make them easier to guess.
        probe = self._new_key(self.key_length).encode()
        while cursor.set_range(probe) or cursor.first():
            raw = cursor.key()
            cursor.delete()
            if txn.get(raw, db=self._pastes) is None:
                return raw
        # The pool ran dry: make a key here, in this transaction.
        for _ in range(MAX_KEY_ATTEMPTS):
            raw = self._new_key(self.key_length).encode()
            if txn.get(raw, db=self._pastes) is None:
                return raw
        raise StorageUnavailable("could not find a free key")  # ~impossible; see MAX_KEY_ATTEMPTS

    def _remove(self, txn: lmdb.Transaction[bytes], raw: bytes, meta: PasteMeta) -> None:
        txn.delete(raw, db=self._pastes)
        txn.delete(_EXPIRY.pack(meta.expires_ms) + raw, db=self._expiry)
        if meta.is_open:
            self._drop_live(txn, raw)

    def _write(self, work: Callable[[lmdb.Transaction[bytes]], _T]) -> _T:
        """Run ``work`` in a write transaction and commit durably. Grows the
        map and retries when it is full; maps a full disk to StorageFull."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    return work(txn)
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.Error as exc:
                if _is_disk_full(exc):
                    log.error("storage full: %s", exc)
                    raise StorageFull("storage full: the server's disk is full, try later") from None
                raise
            except OSError as exc:
                if exc.errno in _DISK_FULL_ERRNOS:
                    log.error("storage full: %s", exc)
                    raise StorageFull("storage full: the server's disk is full, try later") from None
                raise

    def _adopt_map_size(self) -> None:
        """Another process (an admin import, a backup restore tool) grew the
        map past ours: adopt its size (LMDB's MDB_MAP_RESIZED protocol)."""
        with self._gate.exclusive():
            self._env.set_mapsize(0)
        log.info("LMDB map size adopted from another process: %d bytes", self._env.info()["map_size"])

    def _grow(self) -> None:
        current = self._env.info()["map_size"]
        if current >= MAX_MAP_BYTES:
            raise StorageFull("storage full: the store reached its maximum size")
        with self._gate.exclusive():
            self._env.set_mapsize(current * 2)
        log.info("LMDB map grown from %d to %d bytes", current, current * 2)



def _live_key(raw: bytes, seq: int) -> bytes:
    return raw + b"\x00" + struct.pack(">Q", seq)
