"""Backup and check of a data dir: stores are built with the real LmdbStore,
damaged with raw lmdb writes, and judged by what an operator sees (the copy
serves the same bytes; each problem line names the damaged key)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from ncpaste.core import keys
from ncpaste.store import Created, NewPaste, codec, maintenance
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.maintenance import backup, check
from ncpaste.store.records import Packed, pack

REPO = Path(__file__).resolve().parent.parent
NOW = 1_790_000_000_000
HOUR_MS = 3_600_000
# Marks every body, so a test can prove no report line leaks paste contents.
SECRET = b"SECRET-BODY"
# Bounds for the live-writer subprocess; a hang fails the test instead of CI.
WRITER_TIMEOUT_S = 10
# The writer keeps this many of its own pastes alive (it takes older ones), so
# pages are freed and reused while the backup reads: the case a copy without a
# registered reader would get wrong.
WRITER_WINDOW = 8


def body_for(n: int) -> bytes:
    """Distinct bodies of varied size; every third is incompressible, so some
    records take LMDB overflow pages and some are tiny."""
    rng = random.Random(n)
    if n % 3 == 0:
        return SECRET + rng.randbytes(rng.randrange(2_000, 12_000))
    return SECRET + (b"line %d of paste %d\n" % (rng.randrange(1000), n)) * rng.randrange(1, 200)


def new_paste(body: bytes, *, expire_s: int = 3600, alias: str | None = None, burn: bool = False) -> Packed:
    return pack(NewPaste(body, keys.token_hash("delete-token"), expire_s, burn=burn, alias=alias))


def fill(path: Path, count: int, *, expire_s: int = 3600) -> dict[str, bytes]:
    """A closed store at ``path`` holding ``count`` pastes; returns key -> body."""
    store = LmdbStore(path, pool_target=100)
    try:
        store.refill_pool(100)
        bodies = [body_for(n) for n in range(count)]
        items = [
            new_paste(body, expire_s=expire_s, alias=f"alias-{n}" if n % 10 == 0 else None, burn=n % 7 == 0)
            for n, body in enumerate(bodies)
        ]
        results = store.create_batch(items, NOW)
        assert all(isinstance(result, Created) for result in results), results
        return {result.key: body for result, body in zip(results, bodies)}  # type: ignore[union-attr]
    finally:
        store.close()


def served(path: Path, now_ms: int = NOW) -> dict[str, bytes]:
    """Every paste a store at ``path`` serves, key -> exact body bytes."""
    store = LmdbStore(path, readonly=True)
    try:
        with store._env.begin(db=store._pastes) as txn:
            names = [bytes(key).decode() for key in txn.cursor().iternext(values=False)]
        out = {}
        for name in names:
            paste = store.get(name, now_ms)
            assert paste is not None, name
            out[name] = codec.open_body(paste.frame, paste.meta)
        return out
    finally:
        store.close()


def digest(path: Path) -> bytes:
    return hashlib.sha256((path / "data.mdb").read_bytes()).digest()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def raw_env(data_dir: Path) -> Iterator[Callable[[], lmdb.Environment]]:
    """Opens the (closed) store with plain lmdb, to damage it on purpose."""
    opened: list[lmdb.Environment] = []

    def open_env() -> lmdb.Environment:
        env = lmdb.open(str(data_dir), max_dbs=4, map_size=1 << 30)
        opened.append(env)
        return env

    yield open_env
    for env in opened:
        env.close()


# -- backup -----------------------------------------------------------------------


def test_backup_copy_serves_every_paste_byte_identical(tmp_path: Path, data_dir: Path) -> None:
    bodies = fill(data_dir, 400)
    store = LmdbStore(data_dir)
    try:  # free some pages, so there is something to compact
        for name in list(bodies)[:100]:
            assert store.take(name, NOW) is not None
            del bodies[name]
        source_stats = store.stats()
    finally:
        store.close()
    source_digest = digest(data_dir)
    dest = tmp_path / "backups" / "today"
    messages: list[str] = []

    report = backup(data_dir, dest, progress=messages.append)

    assert report == maintenance.BackupReport(dest, 300, (dest / "data.mdb").stat().st_size)
    assert report.bytes <= (data_dir / "data.mdb").stat().st_size
    assert messages and any("copying" in line for line in messages)
    assert digest(data_dir) == source_digest, "backup must not change the source"
    assert served(dest) == bodies
    copy = LmdbStore(dest)
    try:
        copy_stats = copy.stats()
    finally:
        copy.close()
    assert (copy_stats.pastes, copy_stats.pool_keys, copy_stats.expiry_entries) == (
        source_stats.pastes,
        source_stats.pool_keys,
        source_stats.expiry_entries,
    )
    result = check(dest, now_ms=NOW)
    assert result.ok, result.problems
    assert result.pastes_checked == 300


def test_backup_into_existing_empty_dir(tmp_path: Path, data_dir: Path) -> None:
    bodies = fill(data_dir, 20)
    dest = tmp_path / "empty"
    dest.mkdir()
    assert backup(data_dir, dest).pastes == 20
    assert sorted(os.listdir(dest)) == ["data.mdb"]
    assert served(dest) == bodies


def test_backup_refuses_non_empty_dest(tmp_path: Path, data_dir: Path) -> None:
    fill(data_dir, 5)
    dest = tmp_path / "occupied"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty") as excinfo:
        backup(data_dir, dest)
    assert str(dest) in str(excinfo.value)
    assert sorted(os.listdir(dest)) == ["notes.txt"]

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match=str(not_a_dir)):
        backup(data_dir, not_a_dir)


# The live writer runs in its own process, as the server does in production:
# LMDB forbids opening one environment twice in a process (a second open resets
# the shared lock table under the first).
WRITER = textwrap.dedent(
    """
    import random, sys, time
    from pathlib import Path
    from ncpaste.core import keys
    from ncpaste.store import NewPaste
    from ncpaste.store.lmdb_store import LmdbStore
    from ncpaste.store.records import pack

    data_dir, stop, now_ms, window, timeout_s = Path(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])

    def body(n):
        return b"live %d\\n" % n + random.Random(n).randbytes(3000 + n % 5000)

    store = LmdbStore(data_dir, pool_target=100)
    deadline = time.monotonic() + timeout_s
    n = 0
    while not stop.exists() and time.monotonic() < deadline:
        data = body(n)
        item = pack(NewPaste(data, keys.token_hash("t"), 3600, alias="live-%06d" % n))
        store.create_batch([item], now_ms)
        if n >= window:
            assert store.take("live-%06d" % (n - window), now_ms) is not None
        if n % 50 == 0:
            store.refill_pool(20)  # pool churn too: keys move between databases
        print(n, flush=True)
        n += 1
    store.close()
    """
)


def live_body(n: int) -> bytes:
    return b"live %d\n" % n + random.Random(n).randbytes(3000 + n % 5000)


def test_backup_and_check_during_live_writer_are_consistent(tmp_path: Path, data_dir: Path) -> None:
    # Big enough (some MB) that the compacting copy takes several of the
    # writer's sub-millisecond commits to run.
    seeded = fill(data_dir, 1500)
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = [str(data_dir), str(stop), str(NOW), str(WRITER_WINDOW), str(WRITER_TIMEOUT_S)]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    assert writer.stdout is not None

    def wait_for_write(at_least: int) -> int:
        while True:
            line = writer.stdout.readline()  # type: ignore[union-attr]
            assert line, "writer stopped early: " + writer.stderr.read()  # type: ignore[union-attr]
            if int(line) >= at_least:
                return int(line)

    try:
        wait_for_write(WRITER_WINDOW * 3)  # the writer is creating and taking pastes
        live_check = check(data_dir, now_ms=NOW)
        dest = tmp_path / "backup"
        report = backup(data_dir, dest)
        wait_for_write(wait_for_write(0) + 20)  # and it kept committing after the copy
    finally:
        stop.touch()
        try:
            writer.wait(timeout=WRITER_TIMEOUT_S + 5)
        finally:
            if writer.poll() is None:
                writer.kill()
    assert writer.returncode == 0, writer.stderr.read()

    assert live_check.ok, live_check.problems
    result = check(dest, now_ms=NOW)
    assert result.ok, result.problems
    copied = served(dest)
    assert len(copied) == report.pastes == result.pastes_checked
    live = sorted(int(name.removeprefix("live-")) for name in copied if name.startswith("live-"))
    # One committed state of the writer: a contiguous run of its pastes, its
    # window full, or one more between a create and the take that follows it.
    assert live == list(range(live[0], live[-1] + 1))
    assert len(live) in (WRITER_WINDOW, WRITER_WINDOW + 1)
    for n in live:
        assert copied["live-%06d" % n] == live_body(n)
    assert {name: body for name, body in copied.items() if not name.startswith("live-")} == seeded
    writes_after = max(int(name.removeprefix("live-")) for name in served(data_dir) if name.startswith("live-"))
    assert writes_after > live[-1], "the copy is a snapshot, not the final state"


# -- check ------------------------------------------------------------------------


def test_check_clean_store(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = fill(data_dir, 250)
    store = LmdbStore(data_dir)
    try:
        short = store.create_batch([new_paste(body_for(n), expire_s=60) for n in range(7)], NOW)
        assert all(isinstance(result, Created) for result in short)
    finally:
        store.close()
    before = digest(data_dir)
    monkeypatch.setattr(maintenance, "PROGRESS_EVERY", 100)
    messages: list[str] = []

    result = check(data_dir, now_ms=NOW + 120_000, progress=messages.append)

    assert result.ok and result.problems == []
    assert result.pastes_checked == len(bodies) + 7
    assert result.expired_not_swept == 7
    assert "pastes: 100 checked" in messages and "pastes: 200 checked" in messages
    assert f"pastes: {len(bodies) + 7} checked" in messages
    assert len(messages) == len(set(messages)), messages  # no count said twice
    assert digest(data_dir) == before, "check must not write"


def test_check_says_a_round_count_once(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part whose count is a multiple of the progress step is named once
    (the last tick is also the final count)."""
    fill(data_dir, 200)
    monkeypatch.setattr(maintenance, "PROGRESS_EVERY", 100)
    messages: list[str] = []
    assert check(data_dir, now_ms=NOW, progress=messages.append).ok
    assert messages.count("pastes: 200 checked") == 1
    assert check(data_dir, now_ms=NOW).expired_not_swept == 0


def _victim(data_dir: Path) -> tuple[str, bytes]:
    """Build a store; return one paste's key (not an alias) and its record."""
    bodies = fill(data_dir, 30)
    name = next(name for name in bodies if not name.startswith("alias-"))
    env = lmdb.open(str(data_dir), max_dbs=4, readonly=True)
    try:
        with env.begin(db=env.open_db(b"pastes", create=False)) as txn:
            return name, txn.get(name.encode())
    finally:
        env.close()


def _flip_frame_byte(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    damaged = bytearray(record)
    damaged[codec.HEADER_BYTES + (len(record) - codec.HEADER_BYTES) // 2] ^= 0x40
    with env.begin(write=True, db=env.open_db(b"pastes")) as txn:
        txn.put(raw, bytes(damaged))


def _wrong_size(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    meta = codec.decode_meta(record)
    tampered = codec.encode_record(dataclasses.replace(meta, size=meta.size + 1), bytes(codec.record_frame(record)))
    with env.begin(write=True, db=env.open_db(b"pastes")) as txn:
        txn.put(raw, tampered)


def _unknown_version(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    with env.begin(write=True, db=env.open_db(b"pastes")) as txn:
        txn.put(raw, b"\x09" + record[1:])


def _expiry_key(raw: bytes, record: bytes) -> bytes:
    return struct.pack(">Q", codec.decode_meta(record).expires_ms) + raw


def _drop_expiry_entry(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    with env.begin(write=True, db=env.open_db(b"expiry")) as txn:
        assert txn.delete(_expiry_key(raw, record))


def _dangling_expiry_entry(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    pastes = env.open_db(b"pastes")  # before the write txn: open_db takes the writer lock itself
    with env.begin(write=True) as txn:
        assert txn.delete(raw, db=pastes)  # the paste goes, its index entry stays


def _stale_expiry_entry(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    stale = struct.pack(">Q", codec.decode_meta(record).expires_ms - HOUR_MS) + raw
    with env.begin(write=True, db=env.open_db(b"expiry")) as txn:
        txn.put(stale, b"")


def _pool_holds_live_key(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    with env.begin(write=True, db=env.open_db(b"pool")) as txn:
        txn.put(raw, b"")


def _unreadable_name(env: lmdb.Environment, raw: bytes, record: bytes) -> None:
    odd = raw + b"\xff\n"
    pastes, expiry = env.open_db(b"pastes"), env.open_db(b"expiry")
    with env.begin(write=True) as txn:
        txn.put(odd, record, db=pastes)
        txn.put(_expiry_key(odd, record), b"", db=expiry)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_flip_frame_byte, "body is damaged"),
        (_wrong_size, "header says"),
        (_unknown_version, "unknown record format 9"),
        (_drop_expiry_entry, "no expiry index entry"),
        (_dangling_expiry_entry, "dangling, no such paste"),
        (_stale_expiry_entry, "dangling, the paste expires at"),
        (_pool_holds_live_key, "pool key"),
        (_unreadable_name, "not a valid key or alias name"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_check_names_the_damaged_key(
    data_dir: Path,
    raw_env: Callable[[], lmdb.Environment],
    damage: Callable[[lmdb.Environment, bytes, bytes], None],
    expected: str,
) -> None:
    name, record = _victim(data_dir)
    env = raw_env()
    damage(env, name.encode(), record)
    env.close()

    result = check(data_dir, now_ms=NOW)

    assert not result.ok
    assert len(result.problems) == 1, result.problems
    (line,) = result.problems
    assert expected in line
    assert repr(name) in line or repr(name.encode() + b"\xff\n") in line
    assert "\n" not in line and SECRET.decode() not in line


def test_problem_list_is_capped(data_dir: Path, raw_env: Callable[[], lmdb.Environment], monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = fill(data_dir, 12)
    env = raw_env()
    expiry = env.open_db(b"expiry")
    with env.begin(write=True) as txn:
        txn.drop(expiry, delete=False)  # empty the index: every paste loses its entry
    env.close()
    monkeypatch.setattr(maintenance, "MAX_PROBLEMS_LISTED", 5)

    result = check(data_dir, now_ms=NOW)

    assert len(result.problems) == 6
    assert result.problems[-1] == f"... and {len(bodies) - 5} more problems not listed"


def test_non_data_dirs_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other-lmdb"
    lmdb.open(str(other), max_dbs=4).close()  # an LMDB env, but not ours
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(b"not lmdb at all" * 1000)
    for path in (empty, tmp_path / "missing", other, garbage):
        with pytest.raises(ValueError, match="not an ncpaste data dir"):
            check(path)
        with pytest.raises(ValueError, match="not an ncpaste data dir"):
            LmdbStore(path, readonly=True)
        with pytest.raises(ValueError, match="not an ncpaste data dir"):
            backup(path, tmp_path / "dest")
        assert not (tmp_path / "dest").exists()
