"""A least-recently-used map bounded by bytes, not by count.

Both caches of ncpaste hold pastes, whose sizes differ by six orders of
magnitude, so a count bound says nothing about memory: the hot cache of
decompressed bodies (net/hot.py) and the S3 store's read cache of frames
(store/s3_store.py) are both this, with their own limits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """At most ``max_bytes`` in all (by ``size_of``); an item over
    ``max_item_bytes`` is never kept. The least recently used go first."""

    def __init__(self, max_bytes: int, max_item_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._size_of = size_of
        self._items: OrderedDict[str, V] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        """The item, now the most recently used; None if absent."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: V) -> bool:
        """Keep ``item`` under ``key`` (replacing what was there); False if it
        is too large to keep (then nothing is kept under ``key``)."""
        self.drop(key)
        size = self._size_of(item)
        if size > self.max_item_bytes:
            return False
        self._items[key] = item
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= self._size_of(old)
        return True

    def drop(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= self._size_of(old)
