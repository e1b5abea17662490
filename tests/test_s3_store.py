"""What only a shared store has: several nodes on one bucket, each with its
own key pool and read cache, and an engine that can go away. Runs against a
real SeaweedFS; time is injected (one clock shared by all nodes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import zstandard
from test_store_contract import TOKEN, body_of, new_paste, open_s3_store

from ncpaste.core import keys
from ncpaste.core.errors import AliasTaken, StorageUnavailable
from ncpaste.store.s3_client import CredentialSource, S3Client, S3Location
from ncpaste.store.s3_store import CLAIM_LEASE_S, S3Store

from conftest import FakeClock, bounded, free_port


@pytest.fixture
async def nodes(s3_engine, tmp_path: Path, clock: FakeClock, nursery: trio.Nursery) -> AsyncIterator[Callable[..., S3Store]]:  # type: ignore[no-untyped-def]
    """A factory of nodes sharing one fresh prefix, each with its own data dir."""
    prefix = uuid.uuid4().hex
    opened = []

    async def node(**kwargs: object) -> S3Store:
        store, client, pool = await open_s3_store(s3_engine, prefix, tmp_path / f"node{len(opened)}", clock, **kwargs)
        opened.append((client, pool))
        await nursery.start(store.run)
        return store

    yield node  # type: ignore[misc]
    for client, pool in opened:
        await client.aclose()
        pool.close()


@bounded
async def test_a_paste_made_on_one_node_is_read_on_the_others(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, c = await nodes(), await nodes(), await nodes()
    created = await a.create(new_paste(b"hello from A\n"))
    assert body_of(await b.get(created.key)) == b"hello from A\n"
    assert body_of(await c.get(created.key)) == b"hello from A\n"


@bounded
async def test_alias_claimed_on_three_nodes_at_once_has_one_winner(nodes) -> None:  # type: ignore[no-untyped-def]
    stores = [await nodes() for _ in range(3)]
    for round_number in range(5):
        alias = f"race-{round_number}"
        winners: list[int] = []

        async def claim(i: int) -> None:
            try:
                await stores[i % 3].create(new_paste(b"node %d" % i, alias=alias))
                winners.append(i)
            except AliasTaken:
                pass

        async with trio.open_nursery() as nursery:
            for i in range(9):
                nursery.start_soon(claim, i)
        assert len(winners) == 1
        for store in stores:
            assert body_of(await store.get(alias)) == b"node %d" % winners[0]


@bounded
async def test_burn_on_many_nodes_has_exactly_one_reader(nodes) -> None:  # type: ignore[no-untyped-def]
    stores = [await nodes() for _ in range(3)]
    created = await stores[0].create(new_paste(b"once", burn=True))
    got: list[bytes] = []

    async def reader(store: S3Store) -> None:
        paste = await store.take(created.key)
        if paste is not None:
            got.append(body_of(paste))

    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(reader, stores[i % 3])
    assert got == [b"once"]


@bounded
async def test_a_delete_is_seen_by_other_nodes_within_the_cache_ttl(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a, b = await nodes(cache_ttl_s=2.0), await nodes(cache_ttl_s=2.0)
    created = await a.create(new_paste(b"to be deleted"))
    assert body_of(await b.get(created.key)) == b"to be deleted"  # now cached on B
    await a.delete(created.key, TOKEN)
    assert await a.get(created.key) is None  # the deleting node: at once
    clock.advance(1.9)
    assert await b.get(created.key) is not None  # B's view is at most the TTL stale ...
    clock.advance(0.1)
    assert await b.get(created.key) is None  # ... and no more


@bounded
async def test_expiry_is_exact_on_every_node_whatever_the_cache(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a, b = await nodes(cache_ttl_s=3600), await nodes(cache_ttl_s=3600)
    created = await a.create(new_paste(b"brief", expire_s=30))
    assert await b.get(created.key) is not None
    clock.advance(30)
    assert await a.get(created.key) is None and await b.get(created.key) is None


@bounded
async def test_an_alias_written_again_with_the_same_bytes_is_seen_anew(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a, b = await nodes(cache_ttl_s=1.0), await nodes(cache_ttl_s=1.0)
    await a.create(new_paste(b"same bytes", alias="same", expire_s=60))
    first = await b.get("same")
    assert first is not None
    await a.delete("same", TOKEN)
    clock.advance(10)
    await a.create(new_paste(b"same bytes", alias="same", expire_s=600))  # same ETag (MD5)
    again = await b.get("same")
    assert again is not None and again.meta.expires_ms == clock.now_ms + 600_000
    clock.advance(100)  # past the first paste's expiry, within the second's
    assert await b.get("same") is not None


@bounded
async def test_sweepers_on_several_nodes_remove_each_paste_once(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    stores = [await nodes() for _ in range(3)]
    doomed = [(await stores[i % 3].create(new_paste(b"d%d" % i, expire_s=60))).key for i in range(30)]
    kept = [(await stores[0].create(new_paste(b"k%d" % i, expire_s=3600))).key for i in range(5)]
    clock.advance(61)
    counts: list[int] = []

    async def sweep(store: S3Store) -> None:
        counts.append(await store.sweep_expired())

    async with trio.open_nursery() as nursery:
        for store in stores:
            nursery.start_soon(sweep, store)
    # Random keys are deleted without a claim (harmless twice), so the
    # counts may overlap; what matters is what is left.
    assert sum(counts) >= 30
    for key in doomed:
        assert await stores[1].get(key) is None
    for key in kept:
        assert await stores[2].get(key) is not None
    # Nothing is left to list: every marker of a removed paste is gone too.
    assert await stores[0].sweep_expired() == 0


@bounded
async def test_spent_claims_are_cleaned_up_later(nodes, clock: FakeClock, s3_engine) -> None:  # type: ignore[no-untyped-def]
    a = await nodes()
    created = await a.create(new_paste(b"burn me", burn=True, expire_s=60))
    assert await a.take(created.key) is not None
    claims = await a._s3.list("c/")
    assert len(claims) == 1
    clock.advance(3600)
    await a.sweep_expired()
    assert await a._s3.list("c/") == [] and await a._s3.list("x/") == []


@bounded
async def test_pastes_created_together_share_one_marker(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a = await nodes()
    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(a.create, new_paste(b"p%d" % i, expire_s=60))
    markers = await a._s3.list("x/")
    assert 1 <= len(markers) < 40  # group commit: fewer marker PUTs than pastes
    clock.advance(61)
    assert await a.sweep_expired() == 40
    assert await a._s3.list("x/") == [] and await a._s3.list("p/") == []


@bounded
async def test_a_marker_with_pastes_of_different_expiry_keeps_the_later_ones(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a = await nodes()
    short, long = await a.create(new_paste(b"short", expire_s=60)), None

    async def make_long() -> None:
        nonlocal long
        long = await a.create(new_paste(b"long", expire_s=7200))

    async with trio.open_nursery() as nursery:  # likely one marker for both
        nursery.start_soon(make_long)
        nursery.start_soon(a.create, new_paste(b"short 2", expire_s=60))
    clock.advance(61)
    assert await a.sweep_expired() == 2
    assert await a.get(short.key) is None
    assert long is not None and body_of(await a.get(long.key)) == b"long"
    clock.advance(7200)
    assert await a.sweep_expired() == 1
    assert await a._s3.list("x/") == []


@bounded
async def test_an_abandoned_claim_does_not_keep_an_expired_paste_forever(nodes, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    a = await nodes()
    created = await a.create(new_paste(b"stuck", expire_s=60, alias="stuck-alias"))
    head = await a._s3.head(f"p/{created.key}")
    assert head is not None
    # A node claimed it for removal and died before deleting it.
    await a._s3.put(f"c/{created.key}.{head.meta('gen')}", b"%d dead-node" % clock.now_ms, create_only=True)
    clock.advance(61)
    assert await a.sweep_expired() == 0  # the claim is fresh: its holder may still act
    assert await a._s3.head(f"p/{created.key}") is not None
    clock.advance(CLAIM_LEASE_S)
    assert await a.sweep_expired() == 1
    assert await a._s3.head(f"p/{created.key}") is None


@bounded
async def test_a_damaged_object_is_reported_not_served(nodes) -> None:  # type: ignore[no-untyped-def]
    from ncpaste.core.errors import CorruptPaste

    a = await nodes(cache_ttl_s=0)
    created = await a.create(new_paste(b"original text"))
    obj = await a._s3.get(f"p/{created.key}")
    assert obj is not None
    meta = {name[len("x-amz-meta-"):]: value for name, value in obj.headers.items() if name.startswith("x-amz-meta-")}
    # Other bytes, validly compressed, under the original metadata: only the
    # checksum can tell.
    await a._s3.put(f"p/{created.key}", zstandard.ZstdCompressor().compress(b"tampered text"), meta=meta)
    paste = await a.get(created.key)
    with pytest.raises(CorruptPaste):
        body_of(paste)


@bounded
async def test_an_engine_that_is_down_gives_storage_unavailable(tmp_path: Path, clock: FakeClock, nursery: trio.Nursery) -> None:
    from botocore.credentials import Credentials

    from ncpaste.store.s3_store import KeyPool

    location = S3Location.parse(f"s3://nowhere/p?endpoint=http://127.0.0.1:{free_port()}")
    async with S3Client(location, CredentialSource(Credentials("a", "b"))) as client:
        pool = KeyPool(tmp_path / "node", key_length=keys.DEFAULT_KEY_LENGTH, target=10)
        store = S3Store(client, pool, clock)
        try:
            await nursery.start(store.run)
            with pytest.raises(StorageUnavailable):
                await store.create(new_paste(b"nowhere to go"))
            with pytest.raises(StorageUnavailable):
                await store.get("Zz9Zz9Zz9Zz9")
            with pytest.raises(StorageUnavailable):
                await store.ping()
        finally:
            pool.close()


def test_store_urls_parse_or_say_why() -> None:
    location = S3Location.parse("s3://pastes/ncpaste/prod?endpoint=http://10.0.0.5:7480&region=eu-1")
    assert (location.bucket, location.prefix, location.endpoint, location.region) == (
        "pastes", "ncpaste/prod/", "http://10.0.0.5:7480", "eu-1")
    assert S3Location.parse("s3://b").endpoint == "https://s3.us-east-1.amazonaws.com"
    assert S3Location.parse("s3://b").prefix == ""
    for bad, why in (("http://b/p", "s3://"), ("s3://b?endpoint=ftp://x", "http"),
                     ("s3://b?colour=red", "unknown option"), ("s3://b?addressing=odd", "addressing")):
        with pytest.raises(ValueError, match=why):
            S3Location.parse(bad)
