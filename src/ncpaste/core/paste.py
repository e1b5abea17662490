"""What the store keeps about a paste besides its bytes."""

from __future__ import annotations

from dataclasses import dataclass

FLAG_BURN = 0x01
FLAG_ALIAS = 0x02


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

    def etag(self) -> str:
        return '"%s"' % self.checksum.hex()
