"""What the store keeps about a paste besides its bytes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

FLAG_BURN = 0x01
FLAG_ALIAS = 0x02
#: A live paste still being written: its bytes are chunks, not one frame.
FLAG_OPEN = 0x04
#: A live paste whose writer vanished or whose server crashed mid-stream.
FLAG_INCOMPLETE = 0x08
#: A live paste closed at the size limit (complete, but cut there).
FLAG_TRUNCATED = 0x10
#: A live paste closed at the first bytes that were not text (kept up to there).
FLAG_NOT_TEXT = 0x20
#: The checksum is SHA-256 cut to 16 bytes; without it, BLAKE2b-128 (records
#: made before 2026-12-03, and restored ones, which keep their export's).
FLAG_SHA256 = 0x40


class LiveEnd(enum.Enum):
    """How a live paste ended, as readers are told (X-Paste-State and
    X-Paste-Truncated, the view's end marker)."""

    #: The writer half-closed or went quiet: all it sent is there.
    COMPLETE = 0
    #: The writer vanished, stayed open too long, or its server crashed.
    INCOMPLETE = FLAG_INCOMPLETE
    #: Cut at the size limit; the writer was told.
    SIZE_LIMIT = FLAG_TRUNCATED
    #: Cut before the first NUL byte or invalid UTF-8; the writer was told.
    NOT_TEXT = FLAG_NOT_TEXT

    @property
    def flags(self) -> int:
        return self.value


#: X-Paste-Truncated values, by flag: why a finished paste ends where it does.
TRUNCATION_REASONS = ((FLAG_TRUNCATED, "size-limit"), (FLAG_NOT_TEXT, "not-text"))


@dataclass(frozen=True, slots=True)
class PasteMeta:
    created_ms: int
    expires_ms: int
    size: int
    checksum: bytes
    token_hash: bytes
    flags: int

    @property
    def burn(self) -> bool:
        return bool(self.flags & FLAG_BURN)

    @property
    def is_alias(self) -> bool:
        return bool(self.flags & FLAG_ALIAS)

    @property
    def is_open(self) -> bool:
        return bool(self.flags & FLAG_OPEN)

    @property
    def state(self) -> str:
        """``open``, ``incomplete`` or ``complete`` (X-Paste-State)."""
        if self.flags & FLAG_OPEN:
            return "open"
        if self.flags & FLAG_INCOMPLETE:
            return "incomplete"
        return "complete"

    @property
    def truncated(self) -> str | None:
        """Why the paste was cut (``size-limit``, ``not-text``), or None."""
        for flag, reason in TRUNCATION_REASONS:
            if self.flags & flag:
                return reason
        return None

    def etag(self) -> str:
        return '"%s"' % self.checksum.hex()
