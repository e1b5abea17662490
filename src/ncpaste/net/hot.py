"""A small cache of hot pastes, decompressed and ready to send.

Reads dominate: the same log link is opened by many people. The store look-up
itself is cheap (a memory-mapped B-tree); decompressing and verifying the
body is not, so that is what is cached. Every hit is checked against the
checksum the store holds right now, so a deleted, expired or replaced paste
is never served from here: the cache only skips work, never a look-up.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from dataclasses import dataclass

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
    def __init__(self, max_bytes: int = HOT_CACHE_BYTES, max_item_bytes: int = HOT_ITEM_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._items: OrderedDict[str, HotPaste] = OrderedDict()
        self._bytes = 0

    def get(self, key: str, checksum: bytes) -> HotPaste | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item.checksum != checksum:  # the name now holds another paste
            self.drop(key)
            return None
        self._items.move_to_end(key)
        return item

    def put(self, key: str, checksum: bytes, body: bytes) -> HotPaste:
        item = HotPaste(checksum, body)
        if len(body) > self.max_item_bytes:
            return item
        self.drop(key)
        self._items[key] = item
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old.body)
        return item

    def drop(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
