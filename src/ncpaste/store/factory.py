"""The one place that picks a backend: ``open_store(config)``.

The shell asks for "the store the configuration names" and gets a
``PasteStore``; it never names a concrete class, so a new backend is added
here and nowhere in ``net/``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from ncpaste.config import Config
from ncpaste.store import PasteStore
from ncpaste.store.embedded import EmbeddedStore
from ncpaste.store.lmdb_store import LmdbStore

log = logging.getLogger(__name__)


class StoreOpenError(Exception):
    """The store cannot be opened (data dir unusable, bucket unreachable); one line for the user."""


def open_lmdb(config: Config) -> LmdbStore:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return LmdbStore(config.data_dir, key_length=config.key_length, pool_target=config.pool_target)
    except Exception as exc:
        raise StoreOpenError(f"cannot open data dir {str(config.data_dir)!r}: {exc}") from None


@asynccontextmanager
async def open_store(config: Config, clock_ms: Callable[[], int]) -> AsyncIterator[PasteStore]:
    """The store ``config`` names, ready to use, closed on exit: the embedded
    LMDB store (with its group-commit writer task), or shared S3 storage."""
    if config.store is not None:
        async with _open_s3(config, clock_ms) as store:
            yield store
        return
    lmdb_store = await trio.to_thread.run_sync(open_lmdb, config)
    try:
        async with trio.open_nursery() as writer:
            store = EmbeddedStore(lmdb_store, clock_ms)
            await writer.start(store.run)
            yield store
            writer.cancel_scope.cancel()
    finally:
        lmdb_store.close()


@asynccontextmanager
async def _open_s3(config: Config, clock_ms: Callable[[], int]) -> AsyncIterator[PasteStore]:
    from ncpaste.store.s3_client import CredentialSource, S3Client, S3Location
    from ncpaste.store.s3_store import KeyPool, S3Store

    assert config.store is not None
    location = S3Location.parse(config.store)
    try:
        credentials = CredentialSource()
        pool = await trio.to_thread.run_sync(
            lambda: KeyPool(config.data_dir, key_length=config.key_length, target=config.pool_target)
        )
    except Exception as exc:
        raise StoreOpenError(f"cannot use store {location}: {exc}") from None
    try:
        async with S3Client(location, credentials) as client:
            store = S3Store(client, pool, clock_ms, cache_ttl_s=config.store_cache_ttl_s)
            problem = await client.bucket_problem()
            if problem is not None:
                raise StoreOpenError(f"cannot use store {location}: {problem}")
            log.info("store: %s", location)
            async with trio.open_nursery() as writers:
                await writers.start(store.run)
                yield store
                writers.cancel_scope.cancel()
    finally:
        pool.close()
