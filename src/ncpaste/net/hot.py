"""A small cache of hot pastes, decompressed and ready to send.

Reads dominate: the same log link is opened by many people. The store look-up
itself is cheap (a memory-mapped B-tree); decompressing and verifying the
body is not, so that is what is cached. Every hit is checked against the
checksum the store holds right now, so a deleted, expired or replaced paste
is never served from here: the cache only skips work, never a look-up.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from ncpaste.core.lru import ByteLRU

# Total decompressed bytes kept: a few hundred typical logs, a fraction of a
# small VM's memory.
HOT_CACHE_BYTES = 64 * 1024 * 1024
# Larger pastes are read rarely enough and cost enough memory to skip.
HOT_ITEM_MAX_BYTES = 1024 * 1024
# gzip for clients without zstd: level 6 is gzip's default balance.
GZIP_LEVEL = 6


@dataclass(slots=True)
class HotPaste:
    checksum: bytes
    body: bytes
    gzipped: bytes | None = None

    def gzip(self) -> bytes:
        if self.gzipped is None:
            self.gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
        return self.gzipped


class HotCache:
    """Hot pastes by key, each checked against the checksum the store holds now."""

    def __init__(self, max_bytes: int = HOT_CACHE_BYTES, max_item_bytes: int = HOT_ITEM_MAX_BYTES) -> None:
        self._items: ByteLRU[HotPaste] = ByteLRU(max_bytes, max_item_bytes, lambda item: len(item.body))

    def get(self, key: str, checksum: bytes) -> HotPaste | None:
        item = self._items.get(key)
        if item is not None and item.checksum != checksum:  # the name now holds another paste
            self._items.drop(key)
            return None
        return item

    def put(self, key: str, checksum: bytes, body: bytes) -> HotPaste:
        item = HotPaste(checksum, body)
        self._items.put(key, item)
        return item

    def drop(self, key: str) -> None:
        self._items.drop(key)
