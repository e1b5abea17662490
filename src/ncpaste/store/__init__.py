"""The storage interface the network shell talks to.

The shell sees only ``PasteStore``: create (key from the pool, or a claimed
alias), get, take (burn after read), delete, sweep expired, refill the key
pool, stats; it hands over plain bytes and options, and ``records`` owns the
format every backend writes. The embedded LMDB store is the default implementation; a
networked multi-node backend implements the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from ncpaste.core.paste import LiveEnd, PasteMeta


@dataclass(frozen=True, slots=True)
class NewPaste:
    """A validated paste waiting to be stored: its plain bytes and options.
    How it is laid out (compression, checksum, flags) is the store's business."""

    body: bytes | bytearray
    token_hash: bytes
    expire_s: int
    burn: bool = False
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class NewLivePaste:
    """A live paste to open: its bytes come later through append_live, and
    it expires ``expire_s`` after finish_live."""

    token_hash: bytes
    expire_s: int
    #: It stays open at most this long.
    hold_s: int
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Created:
    key: str
    created_ms: int
    expires_ms: int
    #: What the store keeps of it (the compressed frame), for the log line;
    #: not part of what identifies the created paste.
    stored_bytes: int = field(default=0, compare=False)
    #: The paste's own bytes (after redaction), as a create's answer tells.
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class StoredPaste:
    key: str
    meta: PasteMeta
    #: The zstd frame as stored: sent as is to clients that take zstd;
    #: ``records.open_stored`` gives the verified plain bytes.
    frame: bytes | memoryview


@dataclass(frozen=True, slots=True)
class Restored:
    """A paste coming back from an export: its name, its metadata as it was
    (times, flags, delete-token hash, size and checksum of ``body``) and its
    plain bytes. ``meta`` must already be checked against ``body``."""

    key: str
    meta: PasteMeta
    body: bytes


@dataclass(frozen=True, slots=True)
class Scanned:
    """One record as a full scan finds it, expired or damaged ones included."""

    #: The name as stored (bytes: a damaged store may hold any).
    key: bytes
    #: None: the record's metadata cannot be read (``ncpaste check`` says more).
    meta: PasteMeta | None
    #: What the store keeps of it (the compressed frame).
    stored_bytes: int
    #: The frame itself, when the scan was asked for bodies; valid only
    #: until the scan moves on.
    frame: bytes | memoryview | None = None


class Removal(Enum):
    """What an operator's delete did."""

    REMOVED = "removed"
    #: An unreadable record, removed all the same (what an admin delete is for).
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts the store keeps without a scan; -1 where the engine has none (S3)."""

    pastes: int
    pool_keys: int
    expiry_entries: int
    #: Bytes in use.
    disk_bytes: int
    map_bytes: int
    #: The data file's size (LMDB's is sparse: it may exceed what is in use).
    file_bytes: int = -1
    #: The least map any process opening the store has: data grown past it
    #: (and past what it held) makes a server started earlier adopt a larger map.
    map_floor_bytes: int = -1
    #: Synced write transactions since the data dir was made (LMDB's
    #: transaction id): beside the pastes created, how many a commit carries.
    commits: int = -1


class PasteStore(Protocol):
    """What the network shell needs from storage. All methods are async and
    safe to call concurrently from many tasks."""

    async def create(self, paste: NewPaste) -> Created:
        """Store durably; return only once the paste is committed to disk.
        Raises AliasTaken, StorageFull."""
        ...

    async def create_live(self, paste: NewLivePaste) -> Created:
        """Open a live paste durably (its URL may be handed out then)."""
        ...

    async def get(self, key: str) -> StoredPaste | None:
        """The paste, or None if absent or expired."""
        ...

    async def take(self, key: str) -> StoredPaste | None:
        """Remove and return a paste in one step (burn after read): of many
        concurrent readers exactly one gets it."""
        ...

    async def delete(self, key: str, token: str) -> None:
        """Raises NotFound, or Forbidden when the token does not match."""
        ...

    async def sweep_expired(self) -> int:
        """Remove what has expired; returns how many were removed."""
        ...

    async def refill_pool(self) -> int:
        """Top up the pre-generated key pool; returns how many keys were added."""
        ...

    async def stats(self) -> StoreStats: ...

    # -- live pastes: created open, filled in groups, finished once --

    async def append_live(self, key: str, seq: int, data: bytes, size: int) -> None:
        """Durably add group ``seq`` (raw bytes) of an open paste whose total is now ``size``."""
        ...

    async def read_live(self, key: str, after_group: int = 0) -> tuple[bytes, int]:
        """The committed bytes of an open paste in the groups after
        ``after_group``, and the last group number read (pass it back to
        read only what is new)."""
        ...

    async def finish_live(self, key: str, end: LiveEnd) -> bool:
        """Close an open paste: one frame, its final size and checksum, how it
        ended; expiry starts now. One that ends with nothing in it is removed.
        False: the paste is gone (empty, or deleted while open)."""
        ...

    async def recover_live(self) -> int:
        """At start: close pastes left open by a crash as incomplete; returns how many."""
        ...

    async def ping(self) -> None:
        """Raise StorageUnavailable if the store does not answer."""
        ...


class AdminStore(PasteStore, Protocol):
    """What the admin commands need beyond serving: an operator's delete, a
    scan of everything, and putting exported pastes back as they were."""

    async def remove(self, key: str) -> Removal | None:
        """Remove a paste with everything it has (the groups of an open live
        paste too), no token asked. None: no such unexpired paste."""
        ...

    def scan(self, *, bodies: bool) -> AsyncIterator[Scanned]:
        """Every record, expired and damaged ones included: one consistent
        snapshot where the engine has them (LMDB), else as listed (S3)."""
        ...

    async def restore(self, pastes: Sequence[Restored]) -> list[bool]:
        """Store each paste under its own name with its own metadata; False
        for one whose name a live paste holds (never overwritten). An
        expired paste under that name, not yet swept, is replaced."""
        ...
