"""One contract, every backend: the embedded LMDB store and S3 (a real
SeaweedFS, and a real Ceph radosgw in the slow group) must behave the same through the ``PasteStore`` protocol the
network shell uses. Time is injected, so expiry costs no waiting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from ncpaste.core import keys
from ncpaste.core.errors import AliasTaken, Forbidden, NotFound
from ncpaste.core.paste import LiveEnd
from ncpaste.store import NewLivePaste, NewPaste, PasteStore, StoredPaste, codec
from ncpaste.store.embedded import EmbeddedStore
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.s3_client import CredentialSource, S3Client, S3Location
from ncpaste.store.s3_store import KeyPool, S3Store

from conftest import S3_BUCKET, FakeClock, bounded

TOKEN = "delete-me-token"


def new_paste(body: bytes, *, expire_s: int = 3600, alias: str | None = None, burn: bool = False) -> NewPaste:
    return NewPaste(body, keys.token_hash(TOKEN), expire_s, burn=burn, alias=alias)


def new_live(*, expire_s: int = 3600, hold_s: int = 3600, alias: str | None = None) -> NewLivePaste:
    return NewLivePaste(keys.token_hash(TOKEN), expire_s, hold_s, alias=alias)


def body_of(paste: StoredPaste | None) -> bytes:
    assert paste is not None
    return codec.open_body(paste.frame, paste.meta)


async def open_s3_store(  # type: ignore[no-untyped-def]
    engine, prefix: str, data_dir: Path, clock: FakeClock, **kwargs: object
) -> tuple[S3Store, S3Client, KeyPool]:
    from botocore.credentials import Credentials

    location = S3Location.parse(f"s3://{S3_BUCKET}/{prefix}?endpoint={engine.endpoint}")
    client = S3Client(location, CredentialSource(Credentials(engine.access_key, engine.secret_key)))
    pool = KeyPool(data_dir, key_length=keys.DEFAULT_KEY_LENGTH, target=50)
    return S3Store(client, pool, clock, **kwargs), client, pool  # type: ignore[arg-type]


@pytest.fixture(params=["lmdb", "s3", pytest.param("ceph", marks=[pytest.mark.slow, pytest.mark.ceph])])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, nursery: trio.Nursery
) -> AsyncIterator[PasteStore]:
    if request.param == "lmdb":
        lmdb_store = LmdbStore(tmp_path / "db", pool_target=50)
        store = EmbeddedStore(lmdb_store, clock)
        await nursery.start(store.run)
        yield store
        lmdb_store.close()
    else:
        engine = request.getfixturevalue("s3_engine" if request.param == "s3" else "ceph_engine")
        store3, client, pool = await open_s3_store(engine, uuid.uuid4().hex, tmp_path / "node", clock)
        await nursery.start(store3.run)
        yield store3
        await client.aclose()
        pool.close()




# -- create and read -----------------------------------------------------------


@bounded
async def test_create_then_get_gives_exact_bytes_and_meta(backend: PasteStore, clock: FakeClock) -> None:
    body = b"make: *** [test] Error 1\n" * 100
    created = await backend.create(new_paste(body, expire_s=600))
    assert len(created.key) == keys.DEFAULT_KEY_LENGTH and set(created.key) <= set(keys.KEY_ALPHABET)
    assert created.created_ms == clock.now_ms and created.expires_ms == clock.now_ms + 600_000
    paste = await backend.get(created.key)
    assert body_of(paste) == body
    assert paste is not None and paste.meta.size == len(body) and paste.meta.state == "complete"
    assert keys.token_matches(TOKEN, paste.meta.token_hash) and not paste.meta.burn


@bounded
async def test_get_unknown_key(backend: PasteStore) -> None:
    assert await backend.get("Zz9Zz9Zz9Zz9") is None


@bounded
async def test_concurrent_creates_get_distinct_keys(backend: PasteStore) -> None:
    created: list[str] = []

    async def one(i: int) -> None:
        created.append((await backend.create(new_paste(b"paste %d" % i))).key)

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(one, i)
    assert len(set(created)) == 40
    for key in created[:5]:
        assert body_of(await backend.get(key)).startswith(b"paste ")


@bounded
async def test_refill_pool_tops_up_then_stops(backend: PasteStore) -> None:
    assert await backend.refill_pool() == 50
    assert await backend.refill_pool() == 0
    assert (await backend.stats()).pool_keys == 50
    await backend.create(new_paste(b"x"))
    assert (await backend.stats()).pool_keys == 49


@bounded
async def test_ping(backend: PasteStore) -> None:
    await backend.ping()


# -- aliases -------------------------------------------------------------------


@bounded
async def test_alias_claim_and_taken(backend: PasteStore) -> None:
    created = await backend.create(new_paste(b"first", alias="build-42"))
    assert created.key == "build-42"
    with pytest.raises(AliasTaken):
        await backend.create(new_paste(b"second", alias="build-42"))
    paste = await backend.get("build-42")
    assert body_of(paste) == b"first" and paste is not None and paste.meta.is_alias


@bounded
async def test_concurrent_alias_claims_have_one_winner(backend: PasteStore) -> None:
    outcomes: list[bytes | None] = []

    async def claim(i: int) -> None:
        try:
            await backend.create(new_paste(b"claimer %d" % i, alias="release"))
            outcomes.append(b"claimer %d" % i)
        except AliasTaken:
            outcomes.append(None)

    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(claim, i)
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1 and len(outcomes) == 12
    assert body_of(await backend.get("release")) == winners[0]


@bounded
async def test_alias_of_expired_unswept_paste_is_free(backend: PasteStore, clock: FakeClock) -> None:
    await backend.create(new_paste(b"old", alias="nightly", expire_s=60))
    clock.advance(61)
    assert await backend.get("nightly") is None
    await backend.create(new_paste(b"new", alias="nightly", expire_s=60))
    assert body_of(await backend.get("nightly")) == b"new"
    # The old paste's expiry entry is stale now: a sweep must not take the new one.
    assert await backend.sweep_expired() >= 0
    assert body_of(await backend.get("nightly")) == b"new"


# -- expiry ----------------------------------------------------------------------


@bounded
async def test_expiry_is_exact_on_read(backend: PasteStore, clock: FakeClock) -> None:
    created = await backend.create(new_paste(b"short", expire_s=10))
    clock.advance(9.999)
    assert body_of(await backend.get(created.key)) == b"short"
    clock.advance(0.001)
    assert await backend.get(created.key) is None


@bounded
async def test_sweep_removes_exactly_the_expired(backend: PasteStore, clock: FakeClock) -> None:
    short = [(await backend.create(new_paste(b"s%d" % i, expire_s=60))).key for i in range(5)]
    long = [(await backend.create(new_paste(b"l%d" % i, expire_s=7200))).key for i in range(3)]
    assert await backend.sweep_expired() == 0
    clock.advance(61)
    assert await backend.sweep_expired() == 5
    assert await backend.sweep_expired() == 0
    for key in short:
        assert await backend.get(key) is None
    for key in long:
        assert (await backend.get(key)) is not None
    clock.advance(7200)
    assert await backend.sweep_expired() == 3


# -- burn and delete -------------------------------------------------------------


@bounded
async def test_take_gives_a_burn_paste_once(backend: PasteStore) -> None:
    created = await backend.create(new_paste(b"read me once", burn=True))
    assert (await backend.get(created.key)).meta.burn  # type: ignore[union-attr]
    got: list[bytes] = []

    async def reader() -> None:
        paste = await backend.take(created.key)
        if paste is not None:
            got.append(body_of(paste))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(reader)
    assert got == [b"read me once"]
    assert await backend.get(created.key) is None
    assert await backend.take(created.key) is None


@bounded
async def test_take_of_expired_paste(backend: PasteStore, clock: FakeClock) -> None:
    created = await backend.create(new_paste(b"gone", burn=True, expire_s=5))
    clock.advance(6)
    assert await backend.take(created.key) is None


@bounded
async def test_delete_needs_the_right_token(backend: PasteStore) -> None:
    created = await backend.create(new_paste(b"secret log"))
    with pytest.raises(Forbidden):
        await backend.delete(created.key, "not-the-token")
    assert body_of(await backend.get(created.key)) == b"secret log"
    await backend.delete(created.key, TOKEN)
    assert await backend.get(created.key) is None
    with pytest.raises(NotFound):
        await backend.delete(created.key, TOKEN)
    with pytest.raises(NotFound):
        await backend.delete("Zz9Zz9Zz9Zz9", TOKEN)


@bounded
async def test_deleted_alias_is_free_again(backend: PasteStore) -> None:
    await backend.create(new_paste(b"v1", alias="docs"))
    await backend.delete("docs", TOKEN)
    await backend.create(new_paste(b"v2", alias="docs"))
    assert body_of(await backend.get("docs")) == b"v2"


# -- live pastes -------------------------------------------------------------------


@bounded
async def test_live_paste_groups_then_finish(backend: PasteStore, clock: FakeClock) -> None:
    created = await backend.create_live(new_live(expire_s=600))
    open_paste = await backend.get(created.key)
    assert open_paste is not None and open_paste.meta.state == "open"
    await backend.append_live(created.key, 1, b"line 1\n", 7)
    await backend.append_live(created.key, 2, b"line 2\n", 14)
    assert await backend.read_live(created.key) == (b"line 1\nline 2\n", 2)
    await backend.append_live(created.key, 3, b"line 3\n", 21)
    assert await backend.read_live(created.key, 2) == (b"line 3\n", 3)
    assert await backend.read_live(created.key, 3) == (b"", 3)
    clock.advance(30)
    assert await backend.finish_live(created.key, LiveEnd.COMPLETE)
    done = await backend.get(created.key)
    assert body_of(done) == b"line 1\nline 2\nline 3\n"
    assert done is not None and done.meta.state == "complete" and not done.meta.truncated
    assert done.meta.expires_ms == clock.now_ms + 600_000
    clock.advance(601)
    assert await backend.get(created.key) is None
    assert await backend.sweep_expired() >= 1


@bounded
@pytest.mark.parametrize(
    "end, state, truncated",
    [
        (LiveEnd.INCOMPLETE, "incomplete", None),
        (LiveEnd.SIZE_LIMIT, "complete", "size-limit"),
        (LiveEnd.NOT_TEXT, "complete", "not-text"),
    ],
)
async def test_live_paste_finished_with_how_it_ended(
    backend: PasteStore, end: LiveEnd, state: str, truncated: str | None
) -> None:
    created = await backend.create_live(new_live())
    await backend.append_live(created.key, 1, b"partial", 7)
    assert await backend.finish_live(created.key, end)
    done = await backend.get(created.key)
    assert body_of(done) == b"partial"
    assert done is not None and done.meta.state == state and done.meta.truncated == truncated


@bounded
@pytest.mark.parametrize("end", [LiveEnd.COMPLETE, LiveEnd.INCOMPLETE, LiveEnd.NOT_TEXT])
async def test_a_live_paste_that_ends_empty_is_removed(backend: PasteStore, end: LiveEnd) -> None:
    created = await backend.create_live(new_live())
    assert await backend.finish_live(created.key, end) is False
    assert await backend.get(created.key) is None
    assert await backend.read_live(created.key) == (b"", 0)
    assert await backend.recover_live() == 0  # nothing left open either


@bounded
async def test_recover_live_closes_what_was_left_open(backend: PasteStore) -> None:
    created = await backend.create_live(new_live())
    await backend.append_live(created.key, 1, b"before the crash\n", 17)
    assert await backend.recover_live() == 1
    done = await backend.get(created.key)
    assert body_of(done) == b"before the crash\n"
    assert done is not None and done.meta.state == "incomplete"
    assert await backend.recover_live() == 0


@bounded
async def test_deleted_live_paste_refuses_more_groups(backend: PasteStore) -> None:
    created = await backend.create_live(new_live())
    await backend.append_live(created.key, 1, b"a", 1)
    await backend.delete(created.key, TOKEN)
    with pytest.raises(NotFound):
        await backend.append_live(created.key, 2, b"b", 2)
    assert await backend.finish_live(created.key, LiveEnd.INCOMPLETE) is False
    assert await backend.get(created.key) is None
    assert await backend.read_live(created.key) == (b"", 0)  # its groups are gone too
