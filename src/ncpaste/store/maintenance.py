"""Backup and integrity check of an LMDB data dir, safe next to a live server.

LMDB lets many processes open one environment: readers never block the writer
and the writer never blocks readers. Both jobs here only read, each inside one
read transaction (``LmdbStore.snapshot``), so they see a single consistent
snapshot of all three named databases however many pastes the server commits
meanwhile. They open the data dir through ``LmdbStore``, read-only, like every
other reader. Run them from their own process (the CLI does): LMDB forbids
opening one environment twice in the same process.

Reports name keys, never paste contents. Keys are the links to pastes, so treat
a report like the links themselves.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import zstandard

from ncpaste.core import keys
from ncpaste.core.errors import CorruptPaste
from ncpaste.core.paste import PasteMeta
from ncpaste.store import codec
from ncpaste.store.lmdb_env import DATA_FILE, EXPIRY_KEY, LOCK_FILE
from ncpaste.store.lmdb_store import LmdbStore

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# A named-database handle (py-lmdb's stubs name it _Database).
_Db = Any

_EXPIRY = EXPIRY_KEY
# Report progress this often: a few lines a second on a large store, not a flood.
PROGRESS_EVERY = 10_000
# A badly damaged store could yield millions of problems; list this many (enough
# to see the pattern) and count the rest, so memory stays flat.
MAX_PROBLEMS_LISTED = 1000
# Longest key prefix shown in a problem line: real keys and aliases are at most
# 64 characters; anything longer is garbage and needs no full echo.
MAX_SHOWN_KEY_BYTES = 80


@dataclass(frozen=True, slots=True)
class BackupReport:
    dest: Path
    pastes: int
    #: Size of the copied ``data.mdb``.
    bytes: int


@dataclass(frozen=True, slots=True)
class CheckReport:
    pastes_checked: int
    #: Pastes past their expiry that the sweeper has not removed yet (not a problem).
    expired_not_swept: int
    #: One line per problem, each naming the key it concerns (at most
    #: MAX_PROBLEMS_LISTED, then one line saying how many more).
    problems: list[str]
    #: How many problems were found in all.
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def backup(data_dir: Path, dest: Path, *, progress: Progress | None = None) -> BackupReport:
    """Write a consistent, compacted copy of ``data_dir`` into ``dest``.

    ``dest`` must not exist or be an empty directory. The copy is one read
    transaction's snapshot with free pages left out, so it is often smaller
    than the source; it is a complete data dir a server can open as is.
    """
    say = progress or _quiet
    data_dir, dest = Path(data_dir), Path(dest)
    store = LmdbStore(data_dir, readonly=True)
    try:
        created_dest = _prepare_dest(dest)
        say(f"copying {data_dir} to {dest}")
        try:
            store.copy_to(dest)
            _fsync_copy(dest)
        except BaseException:
            _remove_partial_copy(dest, created_dest)
            raise
    finally:
        store.close()
    copied_bytes = (dest / DATA_FILE).stat().st_size
    say(f"copied {copied_bytes} bytes; counting pastes in the copy")
    pastes = _count_pastes(dest)
    log.info("backup of %s to %s: %d pastes, %d bytes", data_dir, dest, pastes, copied_bytes)
    say(f"backup done: {pastes} pastes")
    return BackupReport(dest, pastes, copied_bytes)


def check(data_dir: Path, *, now_ms: int | None = None, progress: Progress | None = None) -> CheckReport:
    """Verify every record of a data dir without changing it.

    Each paste must have a readable header, a body that decompresses to the
    size and checksum in that header, a valid key name and its entry in the
    expiry index; each expiry entry must point at a paste with that expiry;
    no pool key may be a stored paste's key. Cursors stream through the
    databases, so memory stays flat however many records there are.

    Everything is read in one transaction so cross-database checks never see a
    half-applied write. On a live server that transaction keeps the pages it
    reads from being reused until it ends, so the file may grow while a long
    check runs.
    """
    checker = _Checker(
        now_ms=time.time_ns() // 1_000_000 if now_ms is None else now_ms,
        say=progress or _quiet,
    )
    store = LmdbStore(Path(data_dir), readonly=True)
    try:
        with store.snapshot() as snap:
            checker.pastes(snap.txn, snap.pastes, snap.expiry)
            checker.expiry_index(snap.txn, snap.pastes, snap.expiry)
            checker.pool(snap.txn, snap.pastes, snap.pool)
    finally:
        store.close()
    report = checker.report()
    log.info(
        "check of %s: %d pastes, %d expired not swept, %d problems",
        data_dir,
        report.pastes_checked,
        report.expired_not_swept,
        checker.problem_count,
    )
    return report


# -- backup helpers -------------------------------------------------------------


def _quiet(message: str) -> None:
    pass


def _prepare_dest(dest: Path) -> bool:
    """Make sure ``dest`` is an empty directory; True if we created it."""
    if dest.exists():
        if not dest.is_dir():
            raise ValueError(f"backup destination is not a directory: {dest}")
        if any(dest.iterdir()):
            raise ValueError(f"backup destination is not empty: {dest}")
        return False
    dest.mkdir(parents=True)
    return True


def _fsync_copy(dest: Path) -> None:
    """LMDB's copy does not sync; a backup must survive a power cut."""
    for path, flags in ((dest / DATA_FILE, os.O_RDONLY), (dest, os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_partial_copy(dest: Path, created_dest: bool) -> None:
    for name in (DATA_FILE, LOCK_FILE):
        (dest / name).unlink(missing_ok=True)
    if created_dest:
        try:
            dest.rmdir()
        except OSError:
            pass


def _count_pastes(dest: Path) -> int:
    """Open the finished copy, which proves it is a readable data dir."""
    # Nothing else uses the copy yet: no lock file needed, none left behind.
    copy = LmdbStore(dest, readonly=True, lock=False)
    try:
        return copy.stats().pastes
    finally:
        copy.close()


# -- check helpers ----------------------------------------------------------------


class _Checker:
    """Walks the three databases of one snapshot, collecting problems."""

    def __init__(self, *, now_ms: int, say: Progress) -> None:
        self.now_ms = now_ms
        self.say = say
        self.pastes_checked = 0
        self.expired_not_swept = 0
        self.problem_count = 0
        self._problems: list[str] = []

    def report(self) -> CheckReport:
        problems = list(self._problems)
        if self.problem_count > len(problems):
            problems.append(f"... and {self.problem_count - len(problems)} more problems not listed")
        return CheckReport(self.pastes_checked, self.expired_not_swept, problems, self.problem_count)

    def problem(self, line: str) -> None:
        self.problem_count += 1
        if len(self._problems) < MAX_PROBLEMS_LISTED:
            self._problems.append(line)

    def tick(self, what: str, count: int) -> None:
        if count % PROGRESS_EVERY == 0:
            self.say(f"{what}: {count} checked")

    def finished(self, what: str, count: int) -> None:
        """The last line of one part; not again if the last tick said it."""
        if count == 0 or count % PROGRESS_EVERY != 0:
            self.say(f"{what}: {count} checked")

    def pastes(self, txn: lmdb.Transaction[bytes], pastes: _Db, expiry: _Db) -> None:
        for raw, record in txn.cursor(db=pastes):
            self.pastes_checked += 1
            self.tick("pastes", self.pastes_checked)
            name = shown_key(raw)
            if not _is_valid_name(raw):
                self.problem(f"paste {name}: key is not a valid key or alias name")
            if len(record) < codec.HEADER_BYTES:
                self.problem(
                    f"paste {name}: record is {len(record)} bytes, shorter than the "
                    f"{codec.HEADER_BYTES}-byte header"
                )
                continue
            try:
                meta = codec.decode_meta(record)
            except (ValueError, struct.error) as exc:
                self.problem(f"paste {name}: unreadable header ({exc})")
                continue
            if meta.expires_ms <= self.now_ms:
                self.expired_not_swept += 1
            # A live paste still open has its bytes in groups, not one frame.
            damage = None if meta.is_open else _body_damage(codec.record_frame(record), meta)
            if damage is not None:
                self.problem(f"paste {name}: body is damaged ({damage})")
            if txn.get(_EXPIRY.pack(meta.expires_ms) + raw, db=expiry) is None:
                self.problem(
                    f"paste {name}: no expiry index entry for its expiry {meta.expires_ms}"
                    " (the sweeper would never remove it)"
                )
        self.finished("pastes", self.pastes_checked)

    def expiry_index(self, txn: lmdb.Transaction[bytes], pastes: _Db, expiry: _Db) -> None:
        seen = 0
        for entry, _ in txn.cursor(db=expiry):
            seen += 1
            self.tick("expiry entries", seen)
            if len(entry) <= _EXPIRY.size:
                self.problem(f"expiry entry {shown_key(entry)}: too short to hold an expiry and a key")
                continue
            (expires_ms,) = _EXPIRY.unpack_from(entry)
            raw = entry[_EXPIRY.size :]
            record = txn.get(raw, db=pastes)
            if record is None:
                self.problem(f"expiry entry for {shown_key(raw)} (expiry {expires_ms}): dangling, no such paste")
                continue
            try:
                stored_ms = codec.decode_meta(record).expires_ms
            except (ValueError, struct.error):
                continue  # already reported with the paste
            if stored_ms != expires_ms:
                self.problem(
                    f"expiry entry for {shown_key(raw)} (expiry {expires_ms}): dangling, "
                    f"the paste expires at {stored_ms}"
                )
        self.finished("expiry entries", seen)

    def pool(self, txn: lmdb.Transaction[bytes], pastes: _Db, pool: _Db) -> None:
        seen = 0
        for raw, _ in txn.cursor(db=pool):
            seen += 1
            self.tick("pool keys", seen)
            if not _is_valid_name(raw):
                self.problem(f"pool key {shown_key(raw)}: not a valid key name")
            if txn.get(raw, db=pastes) is not None:
                self.problem(
                    f"pool key {shown_key(raw)}: is also a stored paste's key"
                    " (the pool must hold only unused keys)"
                )
        self.finished("pool keys", seen)


def _body_damage(frame: memoryview, meta: PasteMeta) -> str | None:
    """None if the body is intact, else a short reason (never the bytes)."""
    try:
        codec.open_body(frame, meta)
        return None
    except CorruptPaste:
        pass
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        return "not a zstd frame"
    if declared != meta.size:
        return f"frame holds {declared} bytes, header says {meta.size}"
    return "checksum mismatch or damaged frame"


def _is_valid_name(raw: bytes) -> bool:
    try:
        return keys.is_plausible_name(raw.decode("ascii"))
    except UnicodeDecodeError:
        return False


def shown_key(raw: bytes | memoryview) -> str:
    """A key fit for a one-line report: quoted text if printable ASCII,
    escaped bytes otherwise, cut short if absurdly long."""
    raw = bytes(raw)
    cut = raw[:MAX_SHOWN_KEY_BYTES]
    suffix = "..." if len(raw) > len(cut) else ""
    try:
        text = cut.decode("ascii")
    except UnicodeDecodeError:
        return repr(cut) + suffix
    return (repr(text) if text.isprintable() else repr(cut)) + suffix
