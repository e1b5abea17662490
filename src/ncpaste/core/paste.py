"""What the store keeps about a paste besides its bytes."""

from __future__ import annotations

from dataclasses import dataclass

FLAG_BURN = 0x01
FLAG_ALIAS = 0x02
#: A live paste still being written: its bytes are chunks, not one frame.
FLAG_OPEN = 0x04
#: A live paste whose writer vanished or whose server crashed mid-stream.
FLAG_INCOMPLETE = 0x08
#: A live paste closed at the size limit (complete, but cut there).
FLAG_TRUNCATED = 0x10


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
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TRUNCATED)

    def etag(self) -> str:
        return '"%s"' % self.checksum.hex()
