"""A small cache of hot pastes, decompressed and ready to send.

Reads dominate: the same log link is opened by many people. The store look-up
itself is cheap (a memory-mapped B-tree); decompressing and verifying the
body is not, so that is what is cached. Every hit is checked against the
checksum the store holds right now, so a deleted, expired or replaced paste
is never served from here: the cache only skips work, never a look-up.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

import h11

from ncpaste.core.lru import ByteLRU

# Total decompressed bytes kept: a few hundred typical logs, a fraction of a
# small VM's memory. (A paste's gzip and zstd copies, made for the readers
# that ask for them, come on top: each is smaller than the body.)
HOT_CACHE_BYTES = 64 * 1024 * 1024
# Larger pastes are read rarely enough and cost enough memory to skip.
HOT_ITEM_MAX_BYTES = 1024 * 1024
# gzip for clients without zstd: level 6 is gzip's default balance.
GZIP_LEVEL = 6


# Built responses kept per hot paste (one per method, coding and second of
# its remaining life in use now): a few; the oldest go when it is full.
MAX_ANSWERS_PER_PASTE = 8


@dataclass(frozen=True, slots=True)
class Answer:
    """A read's response, built and validated once, sent to every reader
    that asks the same (``core.reads.raw_plan_key``)."""

    response: h11.Response
    #: The body as one h11 event (None: no body, HEAD).
    data: h11.Data | None


@dataclass(slots=True)
class HotPaste:
    checksum: bytes
    body: bytes
    gzipped: bytes | None = None
    answers: dict[tuple[object, ...], Answer] = field(default_factory=dict)
    #: One body event per content coding, shared by that coding's answers
    #: (so the zstd frame is copied once, not once per answer).
    bodies: dict[str | None, h11.Data] = field(default_factory=dict)

    def answer(self, key: tuple[object, ...]) -> Answer | None:
        return self.answers.get(key)

    def body_event(self, encoding: str | None, payload: bytes | memoryview) -> h11.Data:
        """``payload`` (this paste in ``encoding``) as one h11 event. (A
        paste restored from an export may be stored as another zstd frame
        of the same bytes: a frame of another length is taken anew.)"""
        event = self.bodies.get(encoding)
        if event is None or len(event.data) != len(payload):
            event = self.bodies[encoding] = h11.Data(data=bytes(payload) if isinstance(payload, memoryview) else payload)
        return event

    def remember(self, key: tuple[object, ...], answer: Answer) -> None:
        if len(self.answers) >= MAX_ANSWERS_PER_PASTE:
            del self.answers[next(iter(self.answers))]
        self.answers[key] = answer

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
