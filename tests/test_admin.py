"""Admin commands (stats, get, delete, sweep, export, import) and their progress
reports.

Stores are built with the real LmdbStore at a fixed clock; the commands run
through argparse + ``admin.add_commands`` + ``admin.run`` exactly as the CLI
will run them (in-process with captured stdout/stderr, or as a subprocess next
to a real ``ncpaste serve``), and are judged by what an operator sees: exact
bytes, exact numbers, exit codes and one-line errors.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import lmdb
import pytest

from ncpaste.commands import admin, progress
from ncpaste.commands.progress import Progress
from ncpaste.core import keys
from ncpaste.core.errors import Forbidden, NotFound
from ncpaste.store import Created, NewLivePaste, NewPaste, codec, embedded, lmdb_env
from ncpaste.store.lmdb_store import LmdbStore
from ncpaste.store.maintenance import check
from ncpaste.store.records import Packed, pack, pack_live

from conftest import paste_blocking

NOW = 1_790_000_000_000
HOUR_MS = 3_600_000
TOKEN = "delete-token"
# Marks every body, so a test can prove a report line never leaks contents.
SECRET = b"SECRET-BODY"
# Bound on each subprocess: a hang fails the test instead of CI.
SUBPROCESS_TIMEOUT_S = 60
# The admin commands on their own parser, as ncpaste.commands registers them.
ADMIN_SCRIPT = """
import argparse, sys
from ncpaste.commands import admin
parser = argparse.ArgumentParser(prog="ncpaste")
admin.add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
sys.exit(admin.run(parser.parse_args(sys.argv[1:])))
"""


# -- helpers --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncpaste")
    admin.add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


@pytest.fixture
def run(capsysbinary, monkeypatch):
    """``run(*argv, now_ms=NOW, stdin=b"")``: one admin command, in-process."""
    monkeypatch.delenv("NCPASTE_DATA_DIR", raising=False)

    def call(*argv: str, now_ms: int = NOW, stdin: bytes | None = None) -> Result:
        capsysbinary.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        args = build_parser().parse_args(list(argv))
        code = admin.run(args, clock_ms=lambda: now_ms)
        captured = capsysbinary.readouterr()
        return Result(code, captured.out, captured.err.decode())

    return call


def run_subprocess(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ADMIN_SCRIPT, *argv],
        input=stdin,
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def incompressible(n: int, size: int) -> bytes:
    return SECRET + random.Random(n).randbytes(size)


def text_body(n: int) -> bytes:
    return SECRET + (f"line of paste {n} ✓\n" * (n * 37 % 300 + 1)).encode()


def new_paste(body: bytes, *, expire_s: int = 3600, alias: str | None = None, burn: bool = False) -> Packed:
    return pack(NewPaste(body, keys.token_hash(TOKEN), expire_s, burn=burn, alias=alias))


@dataclass
class Known:
    """What a test store holds, for exact comparisons."""

    live: dict[str, bytes]
    expired: dict[str, bytes]
    created_ms: dict[str, int]
    expires_ms: dict[str, int]
    flags: dict[str, tuple[bool, bool]]  # burn, alias
    pool_keys: int


POOL_TARGET = 50


def make_store(path: Path) -> Known:
    """A closed store: 6 random-key pastes, 2 aliases (one burn), and 2 pastes
    that expired an hour before NOW but are not swept."""
    store = LmdbStore(path, pool_target=POOL_TARGET)
    known = Known({}, {}, {}, {}, {}, 0)
    try:
        store.refill_pool(POOL_TARGET)
        specs = [
            (text_body(1), {}),
            (text_body(2), {"expire_s": 7200}),
            (incompressible(3, 5000), {}),
            (text_body(4), {"burn": True}),
            (b"x", {"expire_s": 90 * 86400}),
            (incompressible(6, 70_000), {}),  # takes LMDB overflow pages
            (text_body(7), {"alias": "build-42"}),
            (text_body(8), {"alias": "burn.me", "burn": True}),
        ]
        results = store.create_batch([new_paste(body, **opts) for body, opts in specs], NOW - 60_000)
        old = [(text_body(9), {}), (text_body(10), {"alias": "old-one"})]
        old_results = store.create_batch([new_paste(body, **opts) for body, opts in old], NOW - 2 * HOUR_MS)
        for (body, opts), result in zip(specs + old, results + old_results):
            assert isinstance(result, Created), result
            target = known.live if result.expires_ms > NOW else known.expired
            target[result.key] = body
            known.created_ms[result.key] = result.created_ms
            known.expires_ms[result.key] = result.expires_ms
            known.flags[result.key] = (bool(opts.get("burn")), "alias" in opts)
        known.pool_keys = store.stats().pool_keys
    finally:
        store.close()
    assert len(known.live) == 8 and len(known.expired) == 2
    return known


def served(path: Path, now_ms: int = NOW) -> dict[str, bytes]:
    """Every live paste a closed store at ``path`` serves, key -> exact bytes."""
    store = LmdbStore(path, readonly=True)
    try:
        with store._env.begin(db=store._pastes) as txn:
            names = [bytes(key).decode() for key in txn.cursor().iternext(values=False)]
        out = {}
        for name in names:
            paste = store.get(name, now_ms)
            if paste is not None:
                out[name] = codec.open_body(paste.frame, paste.meta)
        return out
    finally:
        store.close()


def damage_body(path: Path, key: str) -> None:
    """Flip a byte inside the stored zstd frame of ``key`` (a closed store at ``path``)."""
    env = lmdb.open(str(path), max_dbs=4)
    try:
        db = env.open_db(b"pastes")
        with env.begin(write=True) as txn:
            record = bytearray(txn.get(key.encode(), db=db))
            record[-3] ^= 0xFF
            txn.put(key.encode(), bytes(record), db=db)
    finally:
        env.close()


def metas(path: Path) -> dict[str, tuple[int, int, int, bool, bool]]:
    """key -> (created, expires, size, burn, alias) for every record."""
    store = LmdbStore(path, readonly=True)
    try:
        with store.snapshot() as snap:
            out = {}
            for raw, record in snap.txn.cursor(db=snap.pastes):
                meta = codec.decode_meta(record)
                out[raw.decode()] = (meta.created_ms, meta.expires_ms, meta.size, meta.burn, meta.is_alias)
            return out
    finally:
        store.close()


def export_line(key: str, body: bytes, *, created_ms: int = NOW - 1000, expires_ms: int = NOW + HOUR_MS,
                token: str = TOKEN, burn: bool = False, alias: bool = False, **override: object) -> bytes:
    obj = {
        "key": key,
        "created_ms": created_ms,
        "expires_ms": expires_ms,
        "burn": burn,
        "alias": alias,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "size": len(body),
        "blake2b": hashlib.blake2b(body, digest_size=16).hexdigest(),
        "body_b64": base64.b64encode(body).decode(),
    }
    obj.update(override)
    for name, value in list(obj.items()):
        if value is None:
            del obj[name]
    return json.dumps(obj).encode() + b"\n"


HEADER = b'{"format": "ncpaste-export", "version": 1, "exported_at": "2026-09-21T00:00:00.000Z"}\n'


def end_line(count: int) -> bytes:
    return json.dumps({"format": "ncpaste-export-end", "pastes": count}).encode() + b"\n"


def export_file(*lines: bytes) -> bytes:
    paste_lines = [line for line in lines if line.strip()]
    return HEADER + b"".join(lines) + end_line(len(paste_lines))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def known(data_dir: Path) -> Known:
    return make_store(data_dir)


# -- help, usage and errors ---------------------------------------------------------------


@pytest.mark.parametrize("command", admin.COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ncpaste {command} ")
    assert "--data-dir DIR" in out and "NCPASTE_DATA_DIR" in out


def test_help_lists_the_commands_and_runs_as_a_real_process():
    done = run_subprocess("--help")
    assert done.returncode == 0
    for command in admin.COMMANDS:
        assert command in done.stdout.decode()
    usage = run_subprocess("get")  # KEY missing: argparse's usage error
    assert usage.returncode == 2
    assert b"KEY" in usage.stderr


@pytest.mark.parametrize(
    "argv",
    [["stats"], ["get", "k3y"], ["get", "--meta", "k3y"], ["delete", "k3y"], ["sweep"], ["export", "-"]],
)
def test_no_data_dir_is_one_line_and_exit_1(run, tmp_path, argv):
    missing = tmp_path / "nowhere"
    result = run(*argv, "--data-dir", str(missing))
    assert result.code == 1
    assert result.err.splitlines() == [f"ncpaste: error: not an ncpaste data dir: {missing} (no data.mdb)"]
    assert result.out == b""
    assert not missing.exists(), "a read or delete must never create a data dir"


def test_data_dir_comes_from_the_environment(run, known, data_dir, monkeypatch):
    monkeypatch.setenv("NCPASTE_DATA_DIR", str(data_dir))
    result = run("stats", "--json")
    assert result.code == 0
    assert json.loads(result.out)["pastes"] == len(known.live)


# -- stats --------------------------------------------------------------------------------


def test_stats_numbers_are_exact(run, known, data_dir):
    result = run("stats", "--json", "--data-dir", str(data_dir))
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    original = sum(len(body) for body in known.live.values())
    stored = sum(len(codec.compress(body)) for body in known.live.values())
    random_keys = sum(1 for key in known.live.keys() | known.expired.keys() if not known.flags[key][1])
    assert stats == {
        "as_of": "2026-09-21T14:13:20.000Z",
        "pastes": 8,
        "expired_not_swept": 2,
        "damaged_records": 0,
        "original_bytes": original,
        "stored_bytes": stored,
        "stored_per_original": round(stored / original, 3),
        "pool_keys": POOL_TARGET - random_keys,
        "expiry_entries": 10,
        "oldest_created": admin.iso_utc(NOW - 60_000),
        "next_expiry": admin.iso_utc(NOW - 60_000 + HOUR_MS),
        "data_file_bytes": (data_dir / "data.mdb").stat().st_size,
        "used_bytes": stats["used_bytes"],
        "commits": stats["commits"],
    }
    # The fixture made its pastes in two batches, each one synced commit, after
    # the commits that opened the store and filled its pool.
    assert stats["commits"] >= 2
    assert stats["oldest_created"] == "2026-09-21T14:12:20.000Z"
    assert 0 < stats["used_bytes"] <= stats["data_file_bytes"]
    assert known.pool_keys == stats["pool_keys"]


def test_stats_text(run, known, data_dir):
    result = run("stats", "--data-dir", str(data_dir))
    assert result.code == 0
    lines = dict(line.split(":", 1) for line in result.text.splitlines())
    assert lines["pastes"].strip() == "8 live, 2 expired not yet swept"
    original = sum(len(body) for body in known.live.values())
    assert lines["original bytes"].strip().startswith(f"{original} (")
    stored = sum(len(codec.compress(body)) for body in known.live.values())
    assert lines["stored bytes"].endswith(f", {stored / original:.3f} of the original (stored ÷ original)")
    assert lines["expiry index"].strip() == "10 entries"
    assert lines["commits"].strip().endswith(" synced write transactions")
    assert lines["next expiry"].strip() == admin.iso_utc(NOW - 60_000 + HOUR_MS)
    assert SECRET.decode() not in result.text + result.err


def test_stats_of_an_empty_store(run, data_dir):
    LmdbStore(data_dir).close()
    stats = json.loads(run("stats", "--json", "--data-dir", str(data_dir)).out)
    assert stats["pastes"] == 0 and stats["stored_per_original"] is None
    assert stats["oldest_created"] is None and stats["next_expiry"] is None


# -- get ----------------------------------------------------------------------------------


def test_get_writes_the_exact_bytes(run, known, data_dir):
    for key, body in known.live.items():
        result = run("get", key, "--data-dir", str(data_dir))
        assert result.code == 0, result.err
        assert result.out == body
        assert result.err == ""


def test_get_never_burns(run, known, data_dir):
    burn_key = next(key for key, (burn, _) in known.flags.items() if burn and key in known.live)
    for _ in range(2):
        assert run("get", burn_key, "--data-dir", str(data_dir)).out == known.live[burn_key]


@pytest.mark.parametrize("which", ["absent", "expired", "nonsense"])
def test_get_missing_paste_exits_1(run, known, data_dir, which):
    key = {"absent": "zzzzzzzzzzzz", "expired": next(iter(known.expired)), "nonsense": "x" * 600}[which]
    for extra in ([], ["--meta"]):
        result = run("get", key, *extra, "--data-dir", str(data_dir))
        assert result.code == 1
        assert result.out == b""
        assert result.err == "ncpaste: error: no such paste\n"


def test_get_meta(run, known, data_dir):
    result = run("get", "burn.me", "--meta", "--data-dir", str(data_dir))
    assert result.code == 0
    fields = {name: value.strip() for name, value in (line.split(":", 1) for line in result.text.splitlines())}
    body = known.live["burn.me"]
    assert fields == {
        "key": "burn.me",
        "created": admin.iso_utc(known.created_ms["burn.me"]),
        "expires": admin.iso_utc(known.expires_ms["burn.me"]),
        "size": f"{len(body)} bytes",
        "stored": f"{len(codec.compress(body))} bytes (zstd)",
        "flags": "burn, alias",
    }
    token_hash = keys.token_hash(TOKEN)
    assert token_hash.hex() not in result.text and base64.b64encode(token_hash).decode() not in result.text
    plain = next(key for key, flags in known.flags.items() if flags == (False, False) and key in known.live)
    assert "flags:    none" in run("get", plain, "--meta", "--data-dir", str(data_dir)).text


def test_get_of_a_damaged_body_refuses_wrong_bytes(run, known, data_dir):
    key = next(iter(known.live))
    damage_body(data_dir, key)
    result = run("get", key, "--data-dir", str(data_dir))
    assert result.code == 1
    assert result.out == b""
    assert result.err == "ncpaste: error: stored paste is damaged\n"


# -- delete and sweep ------------------------------------------------------------------------


def test_delete_needs_no_token_and_exits_1_when_absent(run, known, data_dir):
    key = next(iter(known.live))
    result = run("delete", key, "--data-dir", str(data_dir))
    assert (result.code, result.text, result.err) == (0, f"deleted {key}\n", "")
    assert run("get", key, "--data-dir", str(data_dir)).code == 1
    again = run("delete", key, "--data-dir", str(data_dir))
    assert (again.code, again.err) == (1, "ncpaste: error: no such paste\n")
    expired = run("delete", next(iter(known.expired)), "--data-dir", str(data_dir))
    assert expired.code == 1
    stats = json.loads(run("stats", "--json", "--data-dir", str(data_dir)).out)
    assert (stats["pastes"], stats["expiry_entries"]) == (7, 9)
    assert check(data_dir, now_ms=NOW).ok


def test_delete_of_an_open_live_paste_leaves_nothing_behind(run, data_dir):
    """An operator deletes a live paste while it is being written: its
    record, expiry entry and committed groups all go, so a restart has
    nothing to 'recover' and the writer's next group is refused."""
    store = LmdbStore(data_dir, pool_target=10)
    try:
        (created,) = store.create_batch([pack_live(NewLivePaste(keys.token_hash(TOKEN), 3600, 3600))], NOW)
        assert isinstance(created, Created)
        store.append_live(created.key, 1, codec.compress(b"line 1\n"), 7)
        store.append_live(created.key, 2, codec.compress(b"line 2\n"), 14)
    finally:
        store.close()
    result = run("delete", created.key, "--data-dir", str(data_dir))
    assert (result.code, result.text) == (0, f"deleted {created.key}\n")
    store = LmdbStore(data_dir, pool_target=10)
    try:
        assert store.get(created.key, NOW) is None
        assert store.read_live(created.key) == (b"", 0)
        assert store.open_live_keys() == []
        assert store.recover_open_live(NOW) == 0
        with pytest.raises(NotFound):
            store.append_live(created.key, 3, codec.compress(b"line 3\n"), 21)
    finally:
        store.close()
    assert check(data_dir, now_ms=NOW).ok


def test_delete_removes_a_record_with_an_unreadable_header(run, known, data_dir):
    env = lmdb.open(str(data_dir), max_dbs=4)
    try:
        with env.begin(write=True) as txn:
            txn.put(b"broken-one", b"\x09garbage", db=env.open_db(b"pastes", txn=txn))
    finally:
        env.close()
    assert run("get", "broken-one", "--data-dir", str(data_dir)).err == (
        "ncpaste: error: stored paste is damaged (run ncpaste check)\n"
    )
    result = run("delete", "broken-one", "--data-dir", str(data_dir))
    assert (result.code, result.text) == (0, "deleted broken-one (its record was damaged)\n")
    assert check(data_dir, now_ms=NOW).ok


def test_sweep_removes_what_expired_and_prints_how_many(run, known, data_dir):
    result = run("sweep", "--data-dir", str(data_dir))
    assert (result.code, result.text) == (0, "removed 2 expired pastes\n")
    assert "sweeping expired pastes: done, 2 in" in result.err
    assert set(metas(data_dir)) == set(known.live)
    assert run("sweep", "--data-dir", str(data_dir)).text == "removed 0 expired pastes\n"
    later = run("sweep", "--data-dir", str(data_dir), now_ms=NOW + 100 * 86400 * 1000)
    assert later.text == "removed 8 expired pastes\n"
    assert metas(data_dir) == {}


def test_sweep_in_many_batches(run, data_dir, monkeypatch):
    monkeypatch.setattr(embedded, "SWEEP_BATCH", 7)
    store = LmdbStore(data_dir)
    try:
        store.create_batch([new_paste(b"p%d" % n, expire_s=60) for n in range(30)], NOW - HOUR_MS)
    finally:
        store.close()
    assert run("sweep", "--data-dir", str(data_dir)).text == "removed 30 expired pastes\n"


# -- export -------------------------------------------------------------------------------


def read_export(data: bytes) -> tuple[dict, list[dict], dict]:
    lines = [json.loads(line) for line in data.splitlines()]
    return lines[0], lines[1:-1], lines[-1]


def test_export_format(run, known, data_dir, tmp_path):
    target = tmp_path / "export.jsonl"
    result = run("export", str(target), "--data-dir", str(data_dir))
    assert result.code == 0, result.err
    assert result.text.startswith("exported 8 pastes (") and result.text.endswith(
        f") to {target}; 2 expired ones left out\n"
    )
    data = target.read_bytes()
    assert data.endswith(b"\n") and data.isascii()
    header, pastes, end = read_export(data)
    assert header == {"format": "ncpaste-export", "version": 1, "exported_at": "2026-09-21T14:13:20.000Z"}
    assert end == {"format": "ncpaste-export-end", "pastes": 8}
    assert {paste["key"] for paste in pastes} == set(known.live)
    for paste in pastes:
        key = paste["key"]
        body = base64.b64decode(paste["body_b64"], validate=True)
        assert list(paste) == list(admin.PASTE_FIELDS)
        assert body == known.live[key]
        assert paste["size"] == len(body)
        assert paste["blake2b"] == hashlib.blake2b(body, digest_size=16).hexdigest()
        assert paste["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
        assert (paste["created_ms"], paste["expires_ms"]) == (known.created_ms[key], known.expires_ms[key])
        assert (paste["burn"], paste["alias"]) == known.flags[key]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial file left behind"


def test_export_to_stdout_then_import_from_stdin(run, known, data_dir, tmp_path):
    exported = run("export", "--data-dir", str(data_dir))
    assert exported.code == 0
    assert "ncpaste: exported 8 pastes" in exported.err
    assert exported.out.startswith(b'{"format":"ncpaste-export"')
    fresh = tmp_path / "fresh"
    imported = run("import", "-", "--data-dir", str(fresh), stdin=exported.out)
    assert imported.code == 0, imported.err
    assert imported.text == "imported 8 pastes; skipped 0 conflicts (key taken), 0 expired, 0 invalid lines\n"
    assert served(fresh) == known.live


def test_export_refuses_to_replace_a_file_without_force(run, known, data_dir, tmp_path):
    target = tmp_path / "export.jsonl"
    target.write_bytes(b"precious")
    result = run("export", str(target), "--data-dir", str(data_dir))
    assert (result.code, result.err) == (1, f"ncpaste: error: {target} exists: remove it or use --force\n")
    assert target.read_bytes() == b"precious"
    assert run("export", str(target), "--force", "--data-dir", str(data_dir)).code == 0
    assert read_export(target.read_bytes())[2]["pastes"] == 8


def test_export_progress_on_a_non_tty_stderr(run, known, data_dir, tmp_path):
    result = run("export", str(tmp_path / "e.jsonl"), "--data-dir", str(data_dir))
    progress_lines = [line for line in result.err.splitlines() if "exporting pastes" in line]
    assert len(progress_lines) == 1
    assert progress_lines[0].startswith("ncpaste: exporting pastes: done, 10 in ")
    assert "\r" not in result.err
    quiet = run("export", str(tmp_path / "q.jsonl"), "-q", "--data-dir", str(data_dir))
    assert quiet.code == 0 and quiet.err == ""


def test_export_reports_a_damaged_paste_and_exits_1(run, known, data_dir, tmp_path):
    key = next(iter(known.live))
    damage_body(data_dir, key)
    target = tmp_path / "e.jsonl"
    result = run("export", str(target), "--data-dir", str(data_dir))
    assert result.code == 1
    assert f"ncpaste: paste {key!r}: body is damaged, not exported" in result.err
    assert "ncpaste: error: 1 damaged pastes were not exported (run ncpaste check)" in result.err
    _, pastes, end = read_export(target.read_bytes())
    assert end["pastes"] == len(pastes) == 7
    assert SECRET.decode() not in result.err


# -- import -------------------------------------------------------------------------------


def test_round_trip_keeps_bytes_keys_times_flags_and_tokens(run, known, data_dir, tmp_path):
    target = tmp_path / "export.jsonl"
    assert run("export", str(target), "--data-dir", str(data_dir)).code == 0
    fresh = tmp_path / "fresh"
    result = run("import", str(target), "--data-dir", str(fresh))
    assert result.code == 0, result.err
    assert served(fresh) == known.live
    assert "warning" not in result.err
    assert metas(fresh) == {
        key: (known.created_ms[key], known.expires_ms[key], len(body), *known.flags[key])
        for key, body in known.live.items()
    }
    assert check(fresh, now_ms=NOW).ok
    store = LmdbStore(fresh)
    try:
        key = next(iter(known.live))
        with pytest.raises(Forbidden):
            store.delete(key, "not-the-token", NOW)
        store.delete(key, TOKEN, NOW)  # the delete token still works
        with pytest.raises(NotFound):
            store.delete(key, TOKEN, NOW)
        # The imported paste expires when the original would have.
        other = next(k for k in known.live if k != key)
        assert store.get(other, known.expires_ms[other] - 1) is not None
        assert store.get(other, known.expires_ms[other]) is None
        # The new store hands out fresh keys as usual.
        created = store.create_batch([new_paste(b"after import")], NOW)[0]
        assert isinstance(created, Created) and created.key not in known.live
    finally:
        store.close()


def test_import_twice_counts_conflicts_and_never_overwrites(run, known, data_dir, tmp_path):
    target = tmp_path / "export.jsonl"
    run("export", str(target), "--data-dir", str(data_dir))
    fresh = tmp_path / "fresh"
    # A live paste already holds one of the exported names, with other bytes.
    store = LmdbStore(fresh)
    try:
        assert isinstance(store.create_batch([new_paste(b"mine", alias="build-42")], NOW)[0], Created)
    finally:
        store.close()
    first = run("import", str(target), "--data-dir", str(fresh))
    assert first.code == 0
    assert first.text == "imported 7 pastes; skipped 1 conflicts (key taken), 0 expired, 0 invalid lines\n"
    assert "key 'build-42' is taken by a live paste, skipped" in first.err
    second = run("import", str(target), "--data-dir", str(fresh))
    assert second.code == 0
    assert second.text == "imported 0 pastes; skipped 8 conflicts (key taken), 0 expired, 0 invalid lines\n"
    assert served(fresh) == {**known.live, "build-42": b"mine"}


def test_import_reports_invalid_lines_and_imports_the_rest(run, tmp_path):
    good = [b"first good paste\n", b"second good paste\n", b"third\n"]
    lines = [
        export_line("good-1", good[0]),                                   # 2
        b"{not json\n",                                                   # 3
        export_line("no-body", b"abc", body_b64=None),                    # 4
        export_line("bad-sum", b"abc", blake2b="00" * 16),               # 5
        export_line("bad-size", b"abc", size=4),                          # 6
        export_line("bad-b64", b"abc", body_b64="!!!!"),                  # 7
        export_line("../etc/passwd", b"abc"),                             # 8
        export_line("healthz", b"abc"),                                   # 9
        b"[1, 2, 3]\n",                                                   # 10
        export_line("bad-time", b"abc", expires_ms="soon"),               # 11
        export_line("bad-token", b"abc", token_sha256="xyz"),             # 12
        export_line("good-2", good[1], alias=True, burn=True),            # 13
        b"\n",                                                            # 14: blank, ignored
        export_line("backwards", b"abc", created_ms=NOW, expires_ms=NOW - 1),  # 15
        export_line("good-3", good[2]),                                   # 16
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(export_file(*lines))
    result = run("import", str(source), "--data-dir", str(tmp_path / "fresh"))
    assert result.code == 1
    assert result.text == "imported 3 pastes; skipped 0 conflicts (key taken), 0 expired, 11 invalid lines\n"
    reported = [line for line in result.err.splitlines() if line.startswith("ncpaste: line ")]
    assert reported == [
        "ncpaste: line 3: invalid: not JSON",
        "ncpaste: line 4: invalid: missing body_b64",
        "ncpaste: line 5: invalid: body does not match its blake2b checksum",
        "ncpaste: line 6: invalid: body is 3 bytes, size says 4",
        "ncpaste: line 7: invalid: body_b64 is not valid base64",
        "ncpaste: line 8: invalid: key is not a valid key or alias name",
        "ncpaste: line 9: invalid: key is not a valid key or alias name",
        "ncpaste: line 10: invalid: not a JSON object",
        f"ncpaste: line 11: invalid: expires_ms is not a whole number in 0..{admin.MAX_TIME_MS}",
        "ncpaste: line 12: invalid: token_sha256 is not 64 hex digits",
        "ncpaste: line 15: invalid: expires_ms is not after created_ms",
    ]
    assert "ncpaste: error: 11 invalid lines were not imported (listed above)" in result.err
    assert served(tmp_path / "fresh") == dict(zip(["good-1", "good-2", "good-3"], good))
    assert metas(tmp_path / "fresh")["good-2"][3:] == (True, True)


def test_import_skips_expired_pastes(run, tmp_path):
    source = tmp_path / "e.jsonl"
    source.write_bytes(export_file(
        export_line("gone-now", b"old", created_ms=NOW - 2 * HOUR_MS, expires_ms=NOW),
        export_line("still-here", b"new"),
    ))
    result = run("import", str(source), "--data-dir", str(tmp_path / "fresh"))
    assert result.code == 0
    assert result.text == "imported 1 pastes; skipped 0 conflicts (key taken), 1 expired, 0 invalid lines\n"
    assert served(tmp_path / "fresh") == {"still-here": b"new"}


def test_import_replaces_an_expired_paste_not_yet_swept(run, known, data_dir, tmp_path):
    source = tmp_path / "e.jsonl"
    source.write_bytes(export_file(export_line("old-one", b"reborn")))
    result = run("import", str(source), "--data-dir", str(data_dir))
    assert (result.code, result.text.split(";")[0]) == (0, "imported 1 pastes")
    assert served(data_dir)["old-one"] == b"reborn"
    assert check(data_dir, now_ms=NOW).ok  # the old expiry entry went with it


def test_import_takes_the_key_out_of_the_pool(run, tmp_path):
    data_dir = tmp_path / "data"
    pooled = iter(["pooledKey234", "pooledKey567"])
    store = LmdbStore(data_dir, pool_target=2, new_key=lambda length: next(pooled))
    try:
        assert store.refill_pool(2) == 2
    finally:
        store.close()
    source = tmp_path / "e.jsonl"
    source.write_bytes(export_file(export_line("pooledKey234", b"imported")))
    assert run("import", str(source), "--data-dir", str(data_dir)).code == 0
    store = LmdbStore(data_dir, readonly=True)
    try:
        with store.snapshot() as snap:
            assert [bytes(k) for k, _ in snap.txn.cursor(db=snap.pool)] == [b"pooledKey567"]
    finally:
        store.close()
    assert check(data_dir, now_ms=NOW).ok


def test_import_without_end_line_or_with_a_wrong_count_exits_1(run, tmp_path):
    truncated = tmp_path / "t.jsonl"
    truncated.write_bytes(HEADER + export_line("only-one", b"one"))
    result = run("import", str(truncated), "--data-dir", str(tmp_path / "a"))
    assert result.code == 1
    assert result.text.startswith("imported 1 pastes")
    assert "ncpaste: error: the file has no end line: it is truncated or incomplete" in result.err
    wrong = tmp_path / "w.jsonl"
    wrong.write_bytes(HEADER + export_line("only-one", b"one") + end_line(2))
    result = run("import", str(wrong), "--data-dir", str(tmp_path / "b"))
    assert result.code == 1
    assert "ncpaste: error: the end line says 2 pastes but the file holds 1" in result.err
    after = tmp_path / "x.jsonl"
    after.write_bytes(export_file(export_line("first", b"1")) + export_line("late", b"2"))
    result = run("import", str(after), "--data-dir", str(tmp_path / "c"))
    assert result.code == 1
    assert "ncpaste: line 4: invalid: data after the end line" in result.err
    assert served(tmp_path / "c") == {"first": b"1"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty: not an ncpaste export"),
        (b'{"key": "abc"}\n', 'line 1 is not an ncpaste export header ({"format": "ncpaste-export", "version": 1, ...})'),
        (b"\x00\x01binary\n", 'line 1 is not an ncpaste export header ({"format": "ncpaste-export", "version": 1, ...})'),
        (b'{"format": "ncpaste-export", "version": 2}\n', "export format version 2 is not supported (this ncpaste reads 1)"),
    ],
)
def test_import_of_something_else_stores_nothing(run, tmp_path, content, message):
    source = tmp_path / "other"
    source.write_bytes(content)
    result = run("import", str(source), "--data-dir", str(tmp_path / "fresh"))
    assert (result.code, result.err, result.out) == (1, f"ncpaste: error: {message}\n", b"")
    assert not (tmp_path / "fresh").exists()


def test_import_of_a_missing_file(run, tmp_path):
    result = run("import", str(tmp_path / "nope.jsonl"), "--data-dir", str(tmp_path / "fresh"))
    assert (result.code, result.err) == (1, f"ncpaste: error: {tmp_path / 'nope.jsonl'}: No such file or directory\n")


def test_dry_run_validates_and_stores_nothing(run, known, data_dir, tmp_path):
    target = tmp_path / "export.jsonl"
    run("export", str(target), "--data-dir", str(data_dir))
    fresh = tmp_path / "fresh"
    result = run("import", str(target), "--dry-run", "--data-dir", str(fresh))
    assert result.code == 0
    assert result.text == "dry run: would import 8 pastes; skipped 0 conflicts (key taken), 0 expired, 0 invalid lines\n"
    assert not fresh.exists()
    before = (data_dir / "data.mdb").read_bytes()
    onto_itself = run("import", str(target), "--dry-run", "--data-dir", str(data_dir))
    assert onto_itself.text.startswith("dry run: would import 0 pastes; skipped 8 conflicts")
    assert (data_dir / "data.mdb").read_bytes() == before
    duplicated = tmp_path / "dup.jsonl"
    duplicated.write_bytes(export_file(export_line("twice", b"a"), export_line("twice", b"b"), b"{}\n"))
    dup = run("import", str(duplicated), "--dry-run", "--data-dir", str(fresh))
    assert dup.code == 1
    assert dup.text == "dry run: would import 1 pastes; skipped 1 conflicts (key taken), 0 expired, 1 invalid lines\n"
    assert not fresh.exists()


def test_import_in_many_batches_and_a_growing_map(run, tmp_path, monkeypatch):
    # Small batches and a tiny initial map: every transaction boundary and
    # several map doublings happen inside one import.
    monkeypatch.setattr(admin, "IMPORT_BATCH_ITEMS", 7)
    monkeypatch.setattr(lmdb_env, "INITIAL_MAP_BYTES", 64 * 1024)
    bodies = {f"paste-{n:03d}": incompressible(n, 3000 + n * 50) for n in range(60)}
    lines = [export_line(key, body) for key, body in bodies.items()]
    lines.insert(30, export_line("paste-003", b"duplicate of an earlier batch"))
    source = tmp_path / "many.jsonl"
    source.write_bytes(export_file(*lines))
    fresh = tmp_path / "fresh"
    result = run("import", str(source), "--data-dir", str(fresh))
    assert result.code == 0, result.err
    assert result.text == "imported 60 pastes; skipped 1 conflicts (key taken), 0 expired, 0 invalid lines\n"
    assert "line 32: key 'paste-003' is taken by a live paste" in result.err
    assert served(fresh) == bodies
    assert (fresh / "data.mdb").stat().st_size > 64 * 1024
    # Past the smallest map a live server may have: the operator is told.
    assert "ncpaste: warning: the store's data grew from " in result.err
    assert "may fail with MDB_MAP_RESIZED until it is restarted" in result.err


def test_import_progress_on_a_non_tty_stderr(run, tmp_path):
    source = tmp_path / "one.jsonl"
    source.write_bytes(export_file(export_line("one-paste", b"1")))
    result = run("import", str(source), "--data-dir", str(tmp_path / "fresh"))
    assert f"ncpaste: importing: done, {source.stat().st_size} B in " in result.err
    assert "\r" not in result.err


def test_over_long_line_is_reported_without_holding_it(run, tmp_path, monkeypatch):
    monkeypatch.setattr(admin, "MAX_IMPORT_LINE_BYTES", 1000)
    monkeypatch.setattr(admin, "_SKIP_CHUNK_BYTES", 64)
    source = tmp_path / "long.jsonl"
    source.write_bytes(export_file(export_line("too-long", b"y" * 5000), export_line("short", b"ok")))
    result = run("import", str(source), "--data-dir", str(tmp_path / "fresh"))
    assert result.code == 1
    assert "ncpaste: line 2: invalid: line longer than 1000 bytes" in result.err
    assert served(tmp_path / "fresh") == {"short": b"ok"}


# -- progress -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_a_line_every_two_seconds_when_not_a_tty():
    clock, stream = FakeClock(), io.StringIO()
    with Progress(1000, "exporting pastes", stream, clock=clock) as report:
        for _ in range(40):  # 10 s at 100 items a second (steps exact in binary)
            clock.now += 0.25
            report.advance(25)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ncpaste: exporting pastes: 200/1000 (20%), 100/s"
    assert len(lines) == 6  # at 2, 4, 6, 8, 10 s, then done
    assert lines[-1] == "ncpaste: exporting pastes: done, 1000 in 10.0 s (100/s)"
    assert "\r" not in stream.getvalue()


def test_progress_without_a_total_and_in_bytes():
    clock, stream = FakeClock(), io.StringIO()
    report = Progress(None, "importing", stream, clock=clock, unit="B")
    clock.now += 2.5
    report.advance(3 * 1024 * 1024)
    report.done()
    report.done()  # once only
    assert stream.getvalue().splitlines() == [
        "ncpaste: importing: 3.0 MiB, 1.2 MiB/s",
        "ncpaste: importing: done, 3.0 MiB in 2.5 s (1.2 MiB/s)",
    ]


def test_progress_redraws_one_tty_line_at_most_ten_times_a_second():
    clock, stream = FakeClock(), FakeTty()
    with Progress(400, "exporting pastes", stream, clock=clock) as report:
        for _ in range(400):  # 4 s, one item every 10 ms
            clock.now += 0.01
            report.advance()
    output = stream.getvalue()
    frames = output.split("\r")[1:]
    assert 35 <= len(frames) <= 42  # ~10 a second over 4 s, not 400
    assert output.endswith("\n") and output.count("\n") == 1
    assert frames[-1].rstrip() == "exporting pastes [########################] 100% 400/400 100/s"
    assert frames[0].startswith("exporting pastes [........................]   0% 1/400")
    middle = frames[len(frames) // 2]
    assert "#" in middle and "." in middle and "%" in middle


def test_progress_note_and_failure_on_a_tty():
    clock, stream = FakeClock(), FakeTty()
    with pytest.raises(RuntimeError):
        with Progress(10, "importing", stream, clock=clock) as report:
            clock.now += 1
            report.advance(3)
            report.note("ncpaste: line 4: invalid: not JSON")
            clock.now += 1
            report.advance(1)
            raise RuntimeError("disk on fire")
    output = stream.getvalue()
    # The note replaces the bar line; the bar comes back; the failure ends the line.
    assert re.search(r"\r +\rncpaste: line 4: invalid: not JSON\n\rimporting \[#", output), repr(output)
    assert output.endswith("\rimporting [#########...............]  40% 4/10 2/s\n")


def test_progress_failure_when_not_a_tty():
    clock, stream = FakeClock(), io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress(None, "sweeping expired pastes", stream, clock=clock) as report:
            report.advance(5)
            raise KeyboardInterrupt
    assert stream.getvalue() == "ncpaste: sweeping expired pastes: stopped after 5\n"


def test_human_bytes():
    assert [progress.human_bytes(n) for n in (0, 1023, 1024, 1536, 10 * 1024**3)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "10.0 GiB",
    ]


# -- next to a live server -----------------------------------------------------------------


def _http(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_admin_commands_beside_a_live_server_taking_pastes(cli_server, tmp_path):
    server = cli_server("--limits", "off")
    data = str(server.data_dir)
    before: dict[str, bytes] = {}
    for n in range(50):
        body = f"before {n} ✓\n".encode() * (n + 1)
        before[paste_blocking(server.tcp_port, body).decode().strip().rsplit("/", 1)[1]] = body

    stop = threading.Event()
    during: dict[str, bytes] = {}
    failures: list[bytes] = []

    def load() -> None:
        n = 0
        while not stop.is_set():
            body = f"written during admin commands {n}\n".encode() * 30
            reply = paste_blocking(server.tcp_port, body)
            if reply.startswith(b"http://"):
                during[reply.decode().strip().rsplit("/", 1)[1]] = body
            else:
                failures.append(reply)
            n += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        time.sleep(0.2)
        stats = run_subprocess("stats", "--json", "--data-dir", data)
        assert stats.returncode == 0, stats.stderr
        counted = json.loads(stats.stdout)["pastes"]
        assert counted >= len(before)

        key, body = next(iter(before.items()))
        got = run_subprocess("get", key, "--data-dir", data)
        assert (got.returncode, got.stdout) == (0, body)
        absent = run_subprocess("get", "zzzzzzzzzzzz", "--data-dir", data)
        assert (absent.returncode, absent.stderr) == (1, b"ncpaste: error: no such paste\n")

        export = tmp_path / "live.jsonl"
        exported = run_subprocess("export", str(export), "--data-dir", data)
        assert exported.returncode == 0, exported.stderr

        # Import into the live data dir: a paste the server has never seen,
        # with a delete token we know.
        source = tmp_path / "incoming.jsonl"
        now_ms = time.time_ns() // 1_000_000
        source.write_bytes(export_file(export_line(
            "imported-live", b"imported while serving\n", created_ms=now_ms, expires_ms=now_ms + HOUR_MS,
            token="live-token",
        )))
        imported = run_subprocess("import", str(source), "--data-dir", data)
        assert imported.returncode == 0, imported.stderr

        deleted = run_subprocess("delete", key, "--data-dir", data)
        assert (deleted.returncode, deleted.stdout) == (0, f"deleted {key}\n".encode())
        swept = run_subprocess("sweep", "--data-dir", data)
        assert swept.returncode == 0 and swept.stdout == b"removed 0 expired pastes\n"
    finally:
        stop.set()
        writer.join(timeout=30)
    assert during, "the server took no pastes while the commands ran"
    assert not failures, failures[:3]

    # The export is one consistent snapshot: everything pasted before it, each byte for byte.
    _, pastes, end = read_export(export.read_bytes())
    assert end["pastes"] == len(pastes)
    exported_bodies = {p["key"]: base64.b64decode(p["body_b64"]) for p in pastes}
    assert {k: exported_bodies[k] for k in before} == before
    assert all(during[k] == v for k, v in exported_bodies.items() if k in during)

    # The server serves what was imported beside it, and honours its token.
    assert _http("GET", f"{server.base_url}/imported-live") == (200, b"imported while serving\n")
    assert _http("DELETE", f"{server.base_url}/imported-live", {"X-Delete-Token": "wrong"})[0] == 403
    assert _http("DELETE", f"{server.base_url}/imported-live", {"X-Delete-Token": "live-token"})[0] == 204
    # What the admin deleted is gone for the server too; the rest is intact.
    assert _http("GET", f"{server.base_url}/{key}")[0] == 404
    for other, other_body in list(during.items())[:20]:
        assert _http("GET", f"{server.base_url}/{other}") == (200, other_body)

    assert server.stop() == 0
    assert check(server.data_dir).ok
