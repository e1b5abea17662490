"""The one place that picks a backend: ``open_store(config)``.

The shell and the admin commands ask for "the store the configuration
names" and get a store; they never name a concrete class, so a new backend
is added here and nowhere in ``net/`` or ``commands/``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import Enum

import trio

from ncpaste.config import Config
from ncpaste.store import AdminStore
from ncpaste.store.embedded import EmbeddedStore
from ncpaste.store.lmdb_env import NoDataFile, NotADataDir
from ncpaste.store.lmdb_store import LmdbStore

log = logging.getLogger(__name__)


class StoreOpenError(Exception):
    """The store cannot be opened (data dir unusable, bucket unreachable); one line for the user."""


class StoreMissing(StoreOpenError):
    """An existing store was asked for and there is none (no data file at all)."""


def check_location(store: str | None) -> None:
    """Raise ValueError unless ``store`` (a --store value; None for the
    embedded store) names a backend this build has, well formed. Parsing
    only, no I/O: a typo is found at start, not at the first paste."""
    if store is not None:
        from ncpaste.store.s3_client import S3Location

        S3Location.parse(store)


class Access(Enum):
    """Who opens the store, which says what it may do to a data dir."""

    #: A server: creates the data dir; on S3, with this node's key pool.
    SERVE = "serve"
    #: An admin read (get, stats, export): an existing store, read-only,
    #: safe beside a running server; never creates anything.
    READ = "read"
    #: An admin change (delete, sweep): an existing store only.
    CHANGE = "change"
    #: An admin import: the data dir is created if missing.
    FILL = "fill"


def open_lmdb(config: Config, access: Access = Access.SERVE) -> LmdbStore:
    try:
        if access in (Access.SERVE, Access.FILL):
            config.data_dir.mkdir(parents=True, exist_ok=True)
        return LmdbStore(
            config.data_dir,
            key_length=config.key_length,
            pool_target=config.pool_target,
            readonly=access is Access.READ,
            create=access in (Access.SERVE, Access.FILL),
        )
    except NoDataFile as exc:
        raise StoreMissing(str(exc)) from None
    except NotADataDir as exc:
        raise StoreOpenError(str(exc)) from None
    except Exception as exc:
        raise StoreOpenError(f"cannot open data dir {str(config.data_dir)!r}: {exc}") from None


@asynccontextmanager
async def open_store(
    config: Config, clock_ms: Callable[[], int], access: Access = Access.SERVE
) -> AsyncIterator[AdminStore]:
    """The store ``config`` names, ready to use, closed on exit: the embedded
    LMDB store (with its group-commit writer thread), or shared S3 storage."""
    if config.store is not None:
        async with _open_s3(config, clock_ms, access) as store:
            yield store
        return
    lmdb_store = await trio.to_thread.run_sync(open_lmdb, config, access)
    try:
        async with trio.open_nursery() as writer:
            embedded = EmbeddedStore(lmdb_store, clock_ms)
            await writer.start(embedded.run)
            yield embedded
            writer.cancel_scope.cancel()
    finally:
        lmdb_store.close()


@asynccontextmanager
async def _open_s3(config: Config, clock_ms: Callable[[], int], access: Access) -> AsyncIterator[AdminStore]:
    from ncpaste.store.s3_client import CredentialSource, S3Client, S3Location
    from ncpaste.store.s3_store import KeyPool, S3Store

    assert config.store is not None
    try:
        location = S3Location.parse(config.store)
    except ValueError as exc:
        raise StoreOpenError(f"--store: {exc}") from None
    try:
        credentials = CredentialSource()
        pool = None
        if access is Access.SERVE:
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
        if pool is not None:
            pool.close()
