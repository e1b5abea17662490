"""The paste as every backend stores it: one home for its format and rules.

Callers hand the store plain bytes and options (``NewPaste``,
``NewLivePaste``); this module turns them into what a backend writes
(``Packed``: a zstd frame, its checksum, flags and the expiry arithmetic),
finishes a live paste (its final metadata and frame), opens a stored paste
back into verified bytes, and words the store's errors. The LMDB and S3
backends only do their I/O with the results, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ncpaste.core.errors import AliasTaken, Forbidden, NotFound
from ncpaste.core.paste import FLAG_ALIAS, FLAG_BURN, FLAG_OPEN, FLAG_SHA256, LiveEnd, PasteMeta
from ncpaste.store import NewLivePaste, NewPaste, Restored, StoredPaste, codec

# Below this, compressing or decompressing on the event loop is cheaper than
# a hop to a worker thread (zstd does ~64 KiB in well under a millisecond).
INLINE_CODEC_BYTES = 64 * 1024
# One live group holds at most what arrives in one commit interval; the size
# limit of a paste bounds it in any case.
MAX_LIVE_GROUP_BYTES = 1 << 31
# A live paste has no body yet: its checksum is set when it is finished.
NO_CHECKSUM = b"\0" * codec.CHECKSUM_BYTES
#: A paste's checksum (16 bytes: SHA-256 cut short, or BLAKE2b-128 in older
#: and restored records) and its delete-token hash (SHA-256), in bytes.
CHECKSUM_BYTES = codec.CHECKSUM_BYTES
TOKEN_HASH_BYTES = codec.TOKEN_HASH_BYTES


@dataclass(frozen=True, slots=True)
class Packed:
    """A paste ready for a backend to write: compressed, checksummed, flagged."""

    frame: bytes
    size: int
    checksum: bytes
    token_hash: bytes
    expire_s: int
    flags: int
    alias: str | None
    #: > 0: a live paste, open for at most this long before it expires.
    hold_s: int = 0

    @property
    def is_live(self) -> bool:
        return self.hold_s > 0

    def meta(self, now_ms: int) -> PasteMeta:
        """Its metadata when created at ``now_ms``: an open live paste is
        never swept while it may still be written (its expiry counts from
        its end, see ``finished``)."""
        expires_ms = now_ms + (self.expire_s + self.hold_s) * 1000
        return PasteMeta(now_ms, expires_ms, self.size, self.checksum, self.token_hash, self.flags)


def _flags(burn: bool, alias: str | None) -> int:
    return (FLAG_BURN if burn else 0) | (FLAG_ALIAS if alias else 0)


def pack(paste: NewPaste) -> Packed:
    """Compress and checksum a paste's bytes (CPU-bound: see ``pack_off_loop``)."""
    return Packed(
        frame=codec.compress(paste.body),
        size=len(paste.body),
        checksum=codec.checksum(paste.body),
        token_hash=paste.token_hash,
        expire_s=paste.expire_s,
        flags=_flags(paste.burn, paste.alias) | FLAG_SHA256,
        alias=paste.alias,
    )


async def pack_off_loop(paste: NewPaste) -> Packed:
    """``pack``, in a worker thread when the paste is large enough to stall the loop."""
    if len(paste.body) <= INLINE_CODEC_BYTES:
        return pack(paste)
    return await trio.to_thread.run_sync(pack, paste)


def pack_live(paste: NewLivePaste) -> Packed:
    """An open live paste: no bytes yet, they come in groups."""
    return Packed(
        frame=b"",
        size=0,
        checksum=NO_CHECKSUM,
        token_hash=paste.token_hash,
        expire_s=paste.expire_s,
        flags=_flags(False, paste.alias) | FLAG_OPEN,
        alias=paste.alias,
        hold_s=paste.hold_s,
    )


def finished(meta: PasteMeta, body: bytes, expire_s: int, end: LiveEnd, now_ms: int) -> tuple[PasteMeta, bytes]:
    """The final metadata and frame of a live paste that ended at ``now_ms``
    with ``body``: its expiry counts from now, its flags say how it ended."""
    final = PasteMeta(
        meta.created_ms,
        now_ms + expire_s * 1000,
        len(body),
        codec.checksum(body),
        meta.token_hash,
        (meta.flags & ~FLAG_OPEN) | end.flags | FLAG_SHA256,
    )
    return final, codec.compress(body)


def export_checksum(meta: PasteMeta, body: bytes) -> bytes:
    """The BLAKE2b-128 the export format carries (``restored`` checks it),
    whatever checksum the record keeps."""
    return meta.checksum if not meta.flags & FLAG_SHA256 else codec.blake2b_checksum(body)


def restored(
    key: str, created_ms: int, expires_ms: int, *, burn: bool, alias: bool,
    token_hash: bytes, checksum: bytes, body: bytes,
) -> Restored:
    """A paste from an export, checked: raises ValueError naming what does
    not match (its bytes against the checksum it was exported with)."""
    # The export's BLAKE2b is kept as the record's checksum (no FLAG_SHA256):
    # the paste's ETag stays what it was where it was exported.
    if codec.blake2b_checksum(body) != checksum:
        raise ValueError("body does not match its blake2b checksum")
    flags = (FLAG_BURN if burn else 0) | (FLAG_ALIAS if alias else 0)
    return Restored(key, PasteMeta(created_ms, expires_ms, len(body), checksum, token_hash, flags), body)


def pack_restored(paste: Restored) -> tuple[str, PasteMeta, bytes]:
    """What a backend writes for a restored paste: its name, its metadata as
    exported, and the frame (CPU-bound: run it off the event loop)."""
    return paste.key, paste.meta, codec.compress(paste.body)


def open_frame(frame: bytes | memoryview, meta: PasteMeta) -> bytes:
    """The verified bytes of a frame (raises CorruptPaste, never wrong bytes)."""
    return codec.open_body(frame, meta)


async def open_stored(paste: StoredPaste) -> bytes:
    """The verified bytes of a stored paste (raises CorruptPaste, never
    answers wrong bytes); large ones are opened off the event loop."""
    if paste.meta.size <= INLINE_CODEC_BYTES:
        return codec.open_body(paste.frame, paste.meta)
    return await trio.to_thread.run_sync(codec.open_body, paste.frame, paste.meta)


async def in_batches(step: Callable[[], Awaitable[int]], batch: int) -> int:
    """Run ``step`` (which does at most ``batch`` items) until it does fewer:
    a big sweep or refill in bounded transactions, so other writes interleave."""
    total = 0
    while True:
        done = await step()
        total += done
        if done < batch:
            return total


# -- the store's errors, worded once ------------------------------------------


def no_such_paste() -> NotFound:
    return NotFound("no such paste (it may have expired)")


def wrong_token() -> Forbidden:
    return Forbidden("wrong delete token")


def alias_taken(alias: str) -> AliasTaken:
    return AliasTaken(f"alias {alias!r} is taken: choose another name or leave alias out")


def live_paste_gone() -> NotFound:
    return NotFound("the live paste is gone (deleted)")
