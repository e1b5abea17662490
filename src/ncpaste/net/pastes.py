"""Creating and reading pastes: the part both ports share.

This is where bytes from a socket become a stored paste (compressed off the
event loop, committed durably) and where a stored paste becomes bytes again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ncpaste.config import Config
from ncpaste.core import keys
from ncpaste.core.options import PasteOptions, PastePlan, resolve
from ncpaste.store import Created, NewPaste, PasteStore, StoredPaste
from ncpaste.store import codec

log = logging.getLogger(__name__)

# Below this, compressing or decompressing on the event loop is cheaper than
# a hop to a worker thread (zstd does ~64 KiB in well under a millisecond).
INLINE_CODEC_BYTES = 64 * 1024


class PasteService:
    def __init__(self, config: Config, store: PasteStore, clock_ms: Callable[[], int]) -> None:
        self.config = config
        self.store = store
        self.clock_ms = clock_ms
        self.base_url = config.base_url

    def url(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def plan(self, options: PasteOptions) -> PastePlan:
        return resolve(
            options,
            default_expire_s=self.config.default_expire_s,
            max_expire_s=self.config.max_expire_s,
        )

    async def create(self, body: bytearray, plan: PastePlan, *, via: str) -> tuple[Created, str]:
        """Compress, store durably, and return (created, delete token)."""
        if len(body) <= INLINE_CODEC_BYTES:
            frame, digest = _pack(body)
        else:
            frame, digest = await trio.to_thread.run_sync(_pack, body)
        token = keys.new_token()
        created = await self.store.create(
            NewPaste(
                frame=frame,
                size=len(body),
                checksum=digest,
                token_hash=keys.token_hash(token),
                expire_s=plan.expire_s,
                burn=plan.burn,
                alias=plan.alias,
            )
        )
        log.info(
            "created key=%s via=%s size=%d stored=%d expire_s=%d burn=%d",
            created.key,
            via,
            len(body),
            len(frame),
            plan.expire_s,
            plan.burn,
        )
        return created, token

    async def body(self, paste: StoredPaste) -> bytes:
        """The verified, decompressed bytes of a stored paste."""
        if paste.meta.size <= INLINE_CODEC_BYTES:
            return codec.open_body(paste.frame, paste.meta)
        return await trio.to_thread.run_sync(codec.open_body, paste.frame, paste.meta)


def _pack(body: bytearray) -> tuple[bytes, bytes]:
    return codec.compress(body), codec.checksum(body)
