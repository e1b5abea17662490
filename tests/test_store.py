"""The LMDB store and its record codec, driven synchronously with explicit
times, plus the group-commit wrapper seen from trio."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ncpaste.core import keys
from ncpaste.core.errors import AliasTaken, CorruptPaste, Forbidden, NotFound
from ncpaste.core.paste import FLAG_ALIAS, FLAG_BURN, FLAG_SHA256, PasteMeta
from ncpaste.store import Created, NewPaste, StoredPaste, codec, lmdb_env
from ncpaste.store.embedded import EmbeddedStore
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.records import Packed, pack

NOW = 1_790_000_000_000
TOKEN = "s3cret-delete-token"
TEST_TIMEOUT_S = 10


def new_paste(body: bytes, *, expire_s: int = 3600, alias: str | None = None, burn: bool = False,
              token: str = TOKEN) -> Packed:
    """What LmdbStore.create_batch takes: a paste packed by the store's records."""
    return pack(plain_paste(body, expire_s=expire_s, alias=alias, burn=burn, token=token))


def plain_paste(body: bytes, *, expire_s: int = 3600, alias: str | None = None, burn: bool = False,
                token: str = TOKEN) -> NewPaste:
    """What a PasteStore (here EmbeddedStore) takes: plain bytes and options."""
    return NewPaste(body, keys.token_hash(token), expire_s, burn=burn, alias=alias)


def create(store: LmdbStore, body: bytes, now_ms: int = NOW, **kwargs: object) -> Created:
    (result,) = store.create_batch([new_paste(body, **kwargs)], now_ms)  # type: ignore[arg-type]
    assert isinstance(result, Created), result
    return result


def body_of(paste: StoredPaste | None) -> bytes:
    assert paste is not None
    return codec.open_body(paste.frame, paste.meta)


def pool_keys(store: LmdbStore) -> set[str]:
    with store._env.begin(db=store._pool) as txn:
        return {bytes(key).decode() for key, _ in txn.cursor()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LmdbStore]:
    opened = LmdbStore(tmp_path / "db", pool_target=50)
    yield opened
    opened.close()


# -- create, get, pool ---------------------------------------------------------


def test_create_returns_key_of_configured_length(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "db", key_length=14, pool_target=20)
    try:
        store.refill_pool(100)
        results = store.create_batch([new_paste(b"one\n"), new_paste(b"two\n", expire_s=60)], NOW)
        assert all(isinstance(r, Created) for r in results)
        first, second = results
        assert isinstance(first, Created) and isinstance(second, Created)
        for created in (first, second):
            assert len(created.key) == 14
            assert set(created.key) <= set(keys.KEY_ALPHABET)
            assert created.created_ms == NOW
        assert first.expires_ms == NOW + 3600 * 1000
        assert second.expires_ms == NOW + 60 * 1000
        assert first.key != second.key
        assert body_of(store.get(first.key, NOW)) == b"one\n"
        assert body_of(store.get(second.key, NOW)) == b"two\n"
    finally:
        store.close()


def test_get_returns_meta(store: LmdbStore) -> None:
    body = "héllo wörld\n".encode() * 100
    created = create(store, body, burn=True, expire_s=120)
    paste = store.get(created.key, NOW + 1)
    assert paste is not None
    assert paste.key == created.key
    assert paste.meta == PasteMeta(
        created_ms=NOW,
        expires_ms=NOW + 120_000,
        size=len(body),
        checksum=codec.checksum(body),
        token_hash=keys.token_hash(TOKEN),
        flags=FLAG_BURN | FLAG_SHA256,
    )
    assert paste.meta.burn and not paste.meta.is_alias
    assert body_of(paste) == body


def test_get_unknown_key(store: LmdbStore) -> None:
    assert store.get("k7Qm2xTfL9aR", NOW) is None


def test_refill_pool_fills_to_target(store: LmdbStore) -> None:
    assert store.stats().pool_keys == 0
    assert store.refill_pool(20) == 20  # at most one batch at a time
    assert store.stats().pool_keys == 20
    assert store.refill_pool(1000) == 30  # never beyond pool_target (50)
    assert store.stats().pool_keys == 50
    assert store.refill_pool(1000) == 0
    pooled = pool_keys(store)
    assert len(pooled) == 50
    assert all(len(key) == 12 and set(key) <= set(keys.KEY_ALPHABET) for key in pooled)


def test_create_takes_its_key_from_the_pool(store: LmdbStore) -> None:
    store.refill_pool(1000)
    before = pool_keys(store)
    created = create(store, b"hello\n")
    after = pool_keys(store)
    assert created.key in before
    assert after == before - {created.key}
    assert store.stats().pool_keys == 49


def test_batch_takes_distinct_pool_keys(store: LmdbStore) -> None:
    store.refill_pool(1000)
    before = pool_keys(store)
    results = store.create_batch([new_paste(b"%d\n" % i) for i in range(10)], NOW)
    created_keys = {r.key for r in results if isinstance(r, Created)}
    assert len(created_keys) == 10
    assert created_keys <= before
    assert pool_keys(store) == before - created_keys


def test_a_batch_is_one_commit(store: LmdbStore) -> None:
    store.refill_pool(100)
    before = store.stats().commits
    store.create_batch([new_paste(b"%d\n" % i) for i in range(10)], NOW)
    assert store.stats().commits == before + 1
    for i in range(3):
        store.create_batch([new_paste(b"alone %d\n" % i)], NOW)
    assert store.stats().commits == before + 4


def test_empty_pool_still_creates(store: LmdbStore) -> None:
    assert store.stats().pool_keys == 0
    results = store.create_batch([new_paste(b"a\n"), new_paste(b"b\n"), new_paste(b"c\n")], NOW)
    created_keys = [r.key for r in results if isinstance(r, Created)]
    assert len(set(created_keys)) == 3
    assert all(len(key) == 12 and set(key) <= set(keys.KEY_ALPHABET) for key in created_keys)
    assert [body_of(store.get(key, NOW)) for key in created_keys] == [b"a\n", b"b\n", b"c\n"]
    assert store.stats().pool_keys == 0


def test_pool_drained_mid_batch_falls_back(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "db", pool_target=3)
    try:
        store.refill_pool(10)
        results = store.create_batch([new_paste(b"%d\n" % i) for i in range(5)], NOW)
        assert len({r.key for r in results if isinstance(r, Created)}) == 5
        assert store.stats().pool_keys == 0
        assert store.stats().pastes == 5
    finally:
        store.close()


def test_fresh_key_collisions_are_retried(tmp_path: Path) -> None:
    """With an empty pool, a fresh key that is already live is not reused."""
    drawn = iter(["aaaaaaaaaaaa"] * 4 + ["bbbbbbbbbbbb"] * 4)
    store = LmdbStore(tmp_path / "db", pool_target=0, new_key=lambda length: next(drawn))
    try:
        first = create(store, b"first\n")
        second = create(store, b"second\n")
        assert (first.key, second.key) == ("aaaaaaaaaaaa", "bbbbbbbbbbbb")
        assert body_of(store.get("aaaaaaaaaaaa", NOW)) == b"first\n"
    finally:
        store.close()


# -- aliases -------------------------------------------------------------------


def test_alias_claim(store: LmdbStore) -> None:
    store.refill_pool(1000)
    created = create(store, b"build log\n", alias="build-42")
    assert created.key == "build-42"
    paste = store.get("build-42", NOW)
    assert paste is not None and paste.meta.is_alias
    assert paste.meta.flags == FLAG_ALIAS | FLAG_SHA256
    assert body_of(paste) == b"build log\n"
    assert store.stats().pool_keys == 50  # an alias does not use a pool key


def test_alias_taken_in_same_batch(store: LmdbStore) -> None:
    results = store.create_batch(
        [
            new_paste(b"winner\n", alias="build-42"),
            new_paste(b"loser\n", alias="build-42", expire_s=60),
            new_paste(b"bystander\n"),
        ],
        NOW,
    )
    winner, loser, bystander = results
    assert isinstance(winner, Created) and winner.key == "build-42"
    assert isinstance(loser, AliasTaken)
    assert loser.http_status == 409
    assert loser.message == "alias 'build-42' is taken: choose another name or leave alias out"
    assert isinstance(bystander, Created)
    assert body_of(store.get("build-42", NOW)) == b"winner\n"
    assert store.get("build-42", NOW).meta.expires_ms == NOW + 3600 * 1000  # type: ignore[union-attr]
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (2, 2)  # nothing stored for the loser


def test_alias_taken_across_batches(store: LmdbStore) -> None:
    create(store, b"winner\n", alias="build-42")
    (loser,) = store.create_batch([new_paste(b"loser\n", alias="build-42", expire_s=10)], NOW + 5000)
    assert isinstance(loser, AliasTaken)
    assert "alias 'build-42' is taken" in loser.message
    assert body_of(store.get("build-42", NOW + 5000)) == b"winner\n"
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (1, 1)


def test_alias_cannot_take_a_live_random_key(store: LmdbStore) -> None:
    created = create(store, b"random\n")
    (result,) = store.create_batch([new_paste(b"squatter\n", alias=created.key)], NOW)
    assert isinstance(result, AliasTaken)
    assert body_of(store.get(created.key, NOW)) == b"random\n"


def test_alias_of_expired_unswept_paste_is_free(store: LmdbStore) -> None:
    create(store, b"old\n", alias="nightly", expire_s=10)
    # One millisecond before expiry the name is still taken ...
    (early,) = store.create_batch([new_paste(b"new\n", alias="nightly")], NOW + 9_999)
    assert isinstance(early, AliasTaken)
    # ... at expiry (expires_ms <= now) it is free, though no sweep has run.
    later = NOW + 10_000
    created = create(store, b"new\n", now_ms=later, alias="nightly", expire_s=100)
    assert created == Created("nightly", later, later + 100_000)
    assert body_of(store.get("nightly", later)) == b"new\n"
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (1, 1)  # the old expiry entry went too
    # A later sweep at the old expiry time leaves the new paste alone.
    assert store.sweep_expired(later + 1, 100) == 0
    assert body_of(store.get("nightly", later + 1)) == b"new\n"


def test_alias_in_pool_is_removed_from_pool(store: LmdbStore) -> None:
    store.refill_pool(1000)
    pooled = sorted(pool_keys(store))[0]
    created = create(store, b"mine\n", alias=pooled)
    assert created.key == pooled
    assert pooled not in pool_keys(store)
    assert store.stats().pool_keys == 49
    # Emptying the rest of the pool never hands the name out again.
    results = store.create_batch([new_paste(b"%d\n" % i) for i in range(60)], NOW)
    assert all(isinstance(r, Created) and r.key != pooled for r in results)
    assert body_of(store.get(pooled, NOW)) == b"mine\n"


# -- expiry --------------------------------------------------------------------


def test_get_returns_none_from_expiry(store: LmdbStore) -> None:
    created = create(store, b"short-lived\n", expire_s=30)
    assert created.expires_ms == NOW + 30_000
    assert body_of(store.get(created.key, created.expires_ms - 1)) == b"short-lived\n"
    assert store.get(created.key, created.expires_ms) is None
    assert store.get(created.key, created.expires_ms + 1) is None
    assert store.stats().pastes == 1  # hidden, not yet removed


def test_sweep_removes_exactly_the_expired(store: LmdbStore) -> None:
    ten = create(store, b"10s\n", expire_s=10)
    twenty = create(store, b"20s\n", expire_s=20)
    thirty = create(store, b"30s\n", expire_s=30)
    long = create(store, b"long\n", expire_s=3600)
    assert store.sweep_expired(NOW + 19_999, 100) == 1
    assert store.sweep_expired(NOW + 20_000, 100) == 1  # expires_ms == now counts as expired
    # Really gone, not just hidden: invisible even at a time they were alive.
    assert store.get(ten.key, NOW) is None
    assert store.get(twenty.key, NOW) is None
    assert body_of(store.get(thirty.key, NOW + 20_000)) == b"30s\n"
    assert body_of(store.get(long.key, NOW + 20_000)) == b"long\n"
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (2, 2)
    assert store.sweep_expired(NOW + 20_000, 100) == 0


def test_sweep_respects_limit(store: LmdbStore) -> None:
    for i in range(5):
        create(store, b"%d\n" % i, expire_s=10 + i)
    live = create(store, b"live\n", expire_s=3600)
    later = NOW + 60_000
    assert store.sweep_expired(later, 2) == 2
    assert store.stats().pastes == 4
    assert store.sweep_expired(later, 2) == 2
    assert store.sweep_expired(later, 2) == 1
    assert store.sweep_expired(later, 2) == 0
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (1, 1)
    assert body_of(store.get(live.key, later)) == b"live\n"


def test_sweep_removes_oldest_first(store: LmdbStore) -> None:
    late = create(store, b"late\n", expire_s=20)
    early = create(store, b"early\n", expire_s=10)
    assert store.sweep_expired(NOW + 30_000, 1) == 1
    assert store.get(early.key, NOW) is None
    assert body_of(store.get(late.key, NOW)) == b"late\n"


def test_stale_expiry_entry_does_not_delete_newer_paste(store: LmdbStore) -> None:
    created = create(store, b"current\n", alias="nightly", expire_s=3600)
    # An index entry left behind by an earlier paste of the same name.
    stale = struct.pack(">Q", NOW + 5_000) + b"nightly"
    with store._env.begin(write=True) as txn:
        txn.put(stale, b"", db=store._expiry)
    assert store.stats().expiry_entries == 2
    store.sweep_expired(NOW + 6_000, 100)
    assert body_of(store.get("nightly", NOW + 6_000)) == b"current\n"
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (1, 1)
    # The paste's own entry still expires it on time.
    assert store.sweep_expired(created.expires_ms, 100) == 1
    assert store.stats().pastes == 0


# -- take, delete --------------------------------------------------------------


def test_take_returns_once(store: LmdbStore) -> None:
    created = create(store, b"burn after reading\n", burn=True)
    taken = store.take(created.key, NOW + 1)
    assert taken is not None and taken.meta.burn
    assert body_of(taken) == b"burn after reading\n"
    assert store.take(created.key, NOW + 2) is None
    assert store.get(created.key, NOW + 2) is None
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (0, 0)


def test_take_of_expired_paste(store: LmdbStore) -> None:
    created = create(store, b"gone\n", expire_s=1)
    assert store.take(created.key, NOW + 1000) is None
    assert store.stats().pastes == 0
    assert store.take("nosuchkey", NOW) is None


def test_delete_with_right_token(store: LmdbStore) -> None:
    created = create(store, b"delete me\n")
    store.delete(created.key, TOKEN, NOW + 1)
    assert store.get(created.key, NOW + 1) is None
    stats = store.stats()
    assert (stats.pastes, stats.expiry_entries) == (0, 0)


def test_delete_with_wrong_token(store: LmdbStore) -> None:
    created = create(store, b"keep me\n")
    for wrong in ("", TOKEN + "x", keys.new_token()):
        with pytest.raises(Forbidden) as caught:
            store.delete(created.key, wrong, NOW)
        assert caught.value.message == "wrong delete token"
        assert caught.value.http_status == 403
    assert body_of(store.get(created.key, NOW)) == b"keep me\n"


def test_delete_unknown_or_expired(store: LmdbStore) -> None:
    with pytest.raises(NotFound) as caught:
        store.delete("k7Qm2xTfL9aR", TOKEN, NOW)
    assert caught.value.message == "no such paste (it may have expired)"
    created = create(store, b"short\n", expire_s=5)
    with pytest.raises(NotFound):
        store.delete(created.key, TOKEN, NOW + 5000)
    store.delete(created.key, TOKEN, NOW + 4999)
    with pytest.raises(NotFound):
        store.delete(created.key, TOKEN, NOW + 4999)


# -- stats, durability, growth -------------------------------------------------


def test_stats_counts(store: LmdbStore) -> None:
    store.refill_pool(1000)
    for i in range(3):
        create(store, b"%d\n" % i)
    create(store, b"alias\n", alias="my-log")
    stats = store.stats()
    assert stats.pastes == 4
    assert stats.pool_keys == 47
    assert stats.expiry_entries == 4
    assert stats.map_bytes == lmdb_env.INITIAL_MAP_BYTES
    assert 0 < stats.disk_bytes <= stats.map_bytes
    store.ping()


def test_data_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = LmdbStore(path, pool_target=10)
    store.refill_pool(100)
    created = create(store, b"durable\n", expire_s=600)
    create(store, b"named\n", alias="kept")
    pooled = pool_keys(store)
    store.close()

    reopened = LmdbStore(path, pool_target=10)
    try:
        paste = reopened.get(created.key, NOW)
        assert body_of(paste) == b"durable\n"
        assert paste is not None and paste.meta.expires_ms == NOW + 600_000
        assert body_of(reopened.get("kept", NOW)) == b"named\n"
        assert pool_keys(reopened) == pooled
        stats = reopened.stats()
        assert (stats.pastes, stats.pool_keys, stats.expiry_entries) == (2, 9, 2)
        # The expiry index survived too: a sweep after reopen finds the paste.
        assert reopened.sweep_expired(NOW + 600_000, 10) == 1
    finally:
        reopened.close()


def hex_lines(n_bytes: int) -> bytes:
    """Random hex text: valid UTF-8, compresses only about 2:1."""
    line_bytes = 65
    lines = [os.urandom(32).hex().encode() + b"\n" for _ in range(n_bytes // line_bytes)]
    return b"".join(lines)


def test_map_grows_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = 64 * 1024
    monkeypatch.setattr(lmdb_env, "INITIAL_MAP_BYTES", small)
    path = tmp_path / "db"
    store = LmdbStore(path, pool_target=100)
    bodies: dict[str, bytes] = {}
    try:
        assert store.stats().map_bytes == small
        store.refill_pool(1000)
        for _ in range(6):  # several transactions, each over the current map
            batch = [hex_lines(300_000), hex_lines(300_000)]
            results = store.create_batch([new_paste(body) for body in batch], NOW)
            for result, body in zip(results, batch):
                assert isinstance(result, Created), result
                bodies[result.key] = body
        big = hex_lines(1_500_000)  # one paste far larger than the map so far
        bodies[create(store, big).key] = big
        stats = store.stats()
        assert stats.pastes == 13
        assert stats.map_bytes > 2 * 1024 * 1024
        doublings = stats.map_bytes // small
        assert stats.map_bytes % small == 0 and doublings & (doublings - 1) == 0  # grown by doubling
        for key, body in bodies.items():
            assert body_of(store.get(key, NOW)) == body
    finally:
        store.close()
    reopened = LmdbStore(path)
    try:
        for key, body in bodies.items():
            assert body_of(reopened.get(key, NOW)) == body
    finally:
        reopened.close()


# -- codec ---------------------------------------------------------------------


def meta_for(body: bytes) -> PasteMeta:
    return PasteMeta(NOW, NOW + 1000, len(body), codec.checksum(body), keys.token_hash(TOKEN), FLAG_BURN | FLAG_SHA256)


BODY = b"2024-01-01 build started\n" + b"compiling module 42 of 99\n" * 200


def test_codec_round_trip() -> None:
    frame = codec.compress(BODY)
    assert len(frame) < len(BODY) // 10
    meta = meta_for(BODY)
    assert codec.open_body(frame, meta) == BODY
    assert codec.open_body(memoryview(frame), meta) == BODY
    record = codec.encode_record(meta, frame)
    assert len(record) == codec.HEADER_BYTES + len(frame)
    assert codec.decode_meta(record) == meta
    assert bytes(codec.record_frame(record)) == frame


def test_codec_reads_blake2b_records() -> None:
    """Records made before FLAG_SHA256 carry BLAKE2b-128 and still open;
    a checksum of the other kind than the flag says is damage."""
    frame = codec.compress(BODY)
    old = PasteMeta(NOW, NOW + 1000, len(BODY), hashlib.blake2b(BODY, digest_size=16).digest(),
                    keys.token_hash(TOKEN), FLAG_BURN)
    assert codec.open_body(frame, old) == BODY
    assert codec.decode_meta(codec.encode_record(old, frame)) == old
    new = meta_for(BODY)
    assert new.checksum == hashlib.sha256(BODY).digest()[:16]
    for mixed in (dataclasses.replace(old, flags=old.flags | FLAG_SHA256), dataclasses.replace(new, flags=FLAG_BURN)):
        with pytest.raises(CorruptPaste):
            codec.open_body(frame, mixed)


def test_decode_meta_rejects_unknown_version() -> None:
    record = bytearray(codec.encode_record(meta_for(BODY), codec.compress(BODY)))
    record[0] = 99
    with pytest.raises(ValueError, match="unknown record format 99"):
        codec.decode_meta(bytes(record))


def corrupt(frame: bytes, meta: PasteMeta) -> None:
    with pytest.raises(CorruptPaste) as caught:
        codec.open_body(frame, meta)
    assert caught.value.message == "stored paste is damaged"
    assert caught.value.http_status == 500


def test_open_body_detects_tampered_frame() -> None:
    frame = codec.compress(BODY)
    meta = meta_for(BODY)
    for position in (len(frame) // 2, len(frame) - 1, 8):
        tampered = bytearray(frame)
        tampered[position] ^= 0xFF
        corrupt(bytes(tampered), meta)
    corrupt(frame[: len(frame) // 2], meta)  # truncated
    corrupt(b"not a zstd frame at all", meta)
    corrupt(b"", meta)


def test_open_body_detects_tampered_checksum_or_size() -> None:
    frame = codec.compress(BODY)
    meta = meta_for(BODY)
    bad_digest = bytes([meta.checksum[0] ^ 1]) + meta.checksum[1:]
    corrupt(frame, PasteMeta(meta.created_ms, meta.expires_ms, meta.size, bad_digest, meta.token_hash, meta.flags))
    corrupt(frame, PasteMeta(meta.created_ms, meta.expires_ms, meta.size - 1, meta.checksum, meta.token_hash, meta.flags))
    corrupt(frame, PasteMeta(meta.created_ms, meta.expires_ms, meta.size + 1, meta.checksum, meta.token_hash, meta.flags))
    # Another paste's frame under this paste's metadata.
    corrupt(codec.compress(BODY.replace(b"42", b"43")), meta)


def test_open_body_detects_tampered_content_size() -> None:
    """A damaged frame header claiming an absurd content size is corruption,
    not an attempt to allocate that much."""
    frame = codec.compress(BODY)
    # Frame header: magic, descriptor 0x60 (single segment, 2-byte content
    # size), 2 bytes of size, then the blocks. Rewrite it to claim 2**62 bytes.
    assert frame[4] & ~0x04 == 0x60  # bit 2: the frame carries its checksum
    claims_huge = frame[:4] + bytes([0xE0 | (frame[4] & 0x04)]) + (2**62).to_bytes(8, "little") + frame[7:]
    corrupt(claims_huge, meta_for(BODY))


# -- the async wrapper ---------------------------------------------------------


async def test_embedded_store_group_commits_concurrent_creates(tmp_path: Path, nursery: trio.Nursery) -> None:
    sync_store = LmdbStore(tmp_path / "db", pool_target=300)
    sync_store.refill_pool(1000)
    batches: list[int] = []
    original = sync_store.create_batch

    def counting_create_batch(items, now_ms):  # type: ignore[no-untyped-def]
        batches.append(len(items))
        return original(items, now_ms)

    sync_store.create_batch = counting_create_batch  # type: ignore[method-assign]
    store = EmbeddedStore(sync_store, clock_ms=lambda: NOW)
    await nursery.start(store.run)
    commits_before = (await store.stats()).commits
    created: dict[int, Created] = {}

    async def one(i: int) -> None:
        created[i] = await store.create(plain_paste(b"paste number %d\n" % i))

    with trio.fail_after(TEST_TIMEOUT_S):
        async with trio.open_nursery() as clients:
            for i in range(200):
                clients.start_soon(one, i)

        assert len(created) == 200
        assert len({c.key for c in created.values()}) == 200
        assert all(c.created_ms == NOW and len(c.key) == 12 for c in created.values())
        assert sum(batches) == 200
        assert len(batches) < 200, batches  # grouped: fewer commits than pastes
        for i, c in created.items():
            assert body_of(await store.get(c.key)) == b"paste number %d\n" % i
        stats = await store.stats()
        assert (stats.pastes, stats.pool_keys) == (200, 100)
        assert stats.commits - commits_before == len(batches)  # what operators see in `ncpaste stats`
    sync_store.close()


async def test_embedded_store_concurrent_take_gives_paste_once(tmp_path: Path, nursery: trio.Nursery) -> None:
    sync_store = LmdbStore(tmp_path / "db", pool_target=10)
    store = EmbeddedStore(sync_store, clock_ms=lambda: NOW)
    await nursery.start(store.run)
    got: list[StoredPaste | None] = []

    async def reader(key: str) -> None:
        got.append(await store.take(key))

    with trio.fail_after(TEST_TIMEOUT_S):
        created = await store.create(plain_paste(b"once\n", burn=True))
        async with trio.open_nursery() as readers:
            for _ in range(20):
                readers.start_soon(reader, created.key)
        winners = [paste for paste in got if paste is not None]
        assert len(got) == 20 and len(winners) == 1
        assert body_of(winners[0]) == b"once\n"
        with pytest.raises(AliasTaken):
            await store.create(plain_paste(b"a\n", alias="dup-name"))
            await store.create(plain_paste(b"b\n", alias="dup-name"))
    sync_store.close()
