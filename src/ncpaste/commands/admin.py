"""Admin commands on a data dir: stats, get, delete, sweep, export, import.

They run in their own process next to a live ``ncpaste serve``: LMDB lets
many processes share one environment (one writer at a time, through the lock
file; readers never block). Read-only commands open the environment read-only
(``maintenance.open_readonly``) and read one snapshot; ``delete`` and ``sweep``
go through ``LmdbStore``; ``import`` writes with its own transactions in the
layout ``lmdb_store`` documents, in batches, so the server's own commits
interleave. Each command opens the environment once: LMDB forbids opening one
environment twice in one process.

Export format (JSON Lines, UTF-8, one object a line):

- line 1, the header:
  ``{"format": "ncpaste-export", "version": 1, "exported_at": "<UTC ISO 8601>"}``
- one line per live paste:
  ``{"key", "created_ms", "expires_ms", "burn", "alias", "token_sha256", "size",
  "blake2b", "body_b64"}``: times in Unix milliseconds; ``token_sha256`` is the
  hex SHA-256 of the delete token as stored (the token itself is never stored),
  so tokens keep working after an import; ``blake2b`` is the hex BLAKE2b-128
  (``hashlib.blake2b(body, digest_size=16)``, ``b2sum -l 128``) of the original
  bytes; ``body_b64`` is standard base64 of the original bytes (not the zstd
  frame, so any backend or version can read it).
- last line, the end:
  ``{"format": "ncpaste-export-end", "pastes": N}`` with N the paste lines
  written, so a truncated file is detected rather than half-imported silently.

Readers ignore fields they do not know; a new incompatible layout gets a new
``version``. Keys are the links to pastes and bodies are the pastes: an export
file is as sensitive as the data dir itself.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import re
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import lmdb

from ncpaste.commands.common import DATA_DIR_HELP, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, data_dir_of, is_tty
from ncpaste.commands.progress import Progress, human_bytes
from ncpaste.core import keys
from ncpaste.core.errors import PasteError
from ncpaste.core.paste import FLAG_ALIAS, FLAG_BURN, PasteMeta
from ncpaste.store import codec
from ncpaste.store.lmdb_store import EXPIRY_KEY as _EXPIRY
from ncpaste.store.lmdb_store import INITIAL_MAP_BYTES, MAX_MAP_BYTES, MAX_READERS, LmdbStore
from ncpaste.store.maintenance import (
    DATA_FILE,
    EXPIRY_DB,
    MAX_DBS,
    PASTES_DB,
    POOL_DB,
    open_readonly,
)
from ncpaste.store.maintenance import shown_key as _shown

log = logging.getLogger(__name__)

#: The subcommands ``add_commands`` registers (``ncpaste.commands`` dispatches these to ``run``).
COMMANDS = ("stats", "get", "delete", "sweep", "export", "import")


EXPORT_FORMAT = "ncpaste-export"
EXPORT_END_FORMAT = "ncpaste-export-end"
EXPORT_VERSION = 1
PASTE_FIELDS = (
    "key", "created_ms", "expires_ms", "burn", "alias",
    "token_sha256", "size", "blake2b", "body_b64",
)

# Import commits this many pastes per write transaction: one fsync per batch
# instead of per paste, while a live server waits at most one short commit
# for LMDB's single writer lock.
IMPORT_BATCH_ITEMS = 500
# ... or this many stored bytes, whichever comes first, so a batch of large
# pastes neither holds the lock long nor sits in memory (the server's group
# commit uses the same bound).
IMPORT_BATCH_BYTES = 32 * 1024 * 1024
# Longest import line accepted: the base64 of a ~750 MiB paste, far above any
# sensible --max-size. A longer line is reported and skipped without being
# held in memory, so one hostile line cannot exhaust it.
MAX_IMPORT_LINE_BYTES = 1 << 30
# Skipping an over-long line reads it in pieces of this size.
_SKIP_CHUNK_BYTES = 1 << 20
# Sweep removes at most this many expired pastes per write transaction (the
# server's own sweep batch), so a live server's creates interleave.
SWEEP_BATCH = 2000
# Per-line import reports (invalid lines, conflicts) listed on stderr before
# the rest are only counted: enough to see the pattern, never a flood.
MAX_LINES_REPORTED = 1000
# LMDB's compile-time key limit (MDB_MAXKEYSIZE); longer keys cannot exist.
MAX_LMDB_KEY_BYTES = 511
# Largest value of the signed 64-bit time fields in a record header.
MAX_TIME_MS = (1 << 63) - 1

_HEX_RE = re.compile(rb"[0-9a-fA-F]*")



class AdminError(Exception):
    """An expected failure: reported as one ``ncpaste: error: ...`` line."""


# -- argument parsing -------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Register the admin subcommands on an argparse subparsers object."""

    def command(name: str, handler: Callable[..., int], help: str, description: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help, description=description)
        parser.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
        parser.set_defaults(admin_handler=handler)
        return parser

    def quiet_flag(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress reports on stderr")

    stats = command(
        "stats", _stats,
        "counts, sizes and compression of the store (read-only)",
        "Count the live pastes and sum their original and stored (zstd) bytes; show the key "
        "pool, the expiry index, the oldest paste, the next expiry (UTC) and the data file "
        "size. Read-only and safe while the server runs.",
    )
    stats.add_argument("--json", action="store_true", help="one JSON object instead of text")
    quiet_flag(stats)

    get = command(
        "get", _get,
        "write a paste's exact bytes to stdout (read-only; never burns)",
        "Write the paste's exact bytes to stdout. Exit 1 if there is no such live paste. "
        "A burn-after-read paste is not burnt by this. Read-only.",
    )
    get.add_argument("key", metavar="KEY", help="the paste's key or alias")
    get.add_argument("--meta", action="store_true",
                     help="print created, expires, size and flags instead of the bytes")

    delete = command(
        "delete", _delete,
        "remove a paste (no delete token needed)",
        "Remove a paste now, as an admin: no delete token needed. Exit 1 if there is no "
        "such live paste.",
    )
    delete.add_argument("key", metavar="KEY", help="the paste's key or alias")

    sweep = command(
        "sweep", _sweep,
        "remove expired pastes now",
        "Remove every expired paste now (the server also does this every minute) and "
        "print how many were removed.",
    )
    quiet_flag(sweep)

    export = command(
        "export", _export,
        "write every live paste to a portable JSON Lines file",
        "Write every live paste (bytes, key or alias, times, flags, delete-token hash) as "
        "JSON Lines: a header line, one line per paste with the body in base64, an end "
        "line. One consistent snapshot, safe while the server runs. The file is as "
        "sensitive as the store: it holds every paste and link.",
    )
    export.add_argument("file", metavar="FILE", nargs="?", default="-",
                        help="where to write; - or nothing for stdout")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    quiet_flag(export)

    import_ = command(
        "import", _import,
        "store the pastes of an export file, keeping keys, times and tokens",
        "Read an export file and store its pastes with the same keys or aliases, times, "
        "flags and delete-token hashes. Each body is checked against its size and "
        "checksum. Expired pastes are skipped; a key that is already taken by a live "
        "paste is never overwritten (counted as a conflict). Invalid lines are reported "
        "by line number and skipped; the rest are still imported, and the exit status "
        "is then 1. Safe while the server runs; the data dir is created if missing.",
    )
    import_.add_argument("file", metavar="FILE", help="export file to read; - for stdin")
    import_.add_argument("--dry-run", action="store_true",
                         help="validate and report what would happen; store nothing")
    quiet_flag(import_)


def run(args: argparse.Namespace, *, clock_ms: Callable[[], int] | None = None) -> int:
    """Run the admin command ``args`` names; return the exit status.

    Expected failures (not a data dir, no such paste, unreadable file, full
    disk) are one ``ncpaste: error: ...`` line on stderr, never a traceback.
    ``clock_ms`` (wall-clock milliseconds) is injectable for tests.
    """
    handler = getattr(args, "admin_handler", None)
    if handler is None:
        _error("not an admin command")
        return EXIT_FAILURE
    now_ms = (clock_ms or _wall_clock_ms)()
    context = _Context(
        data_dir=data_dir_of(args),
        now_ms=now_ms,
        quiet=getattr(args, "quiet", False),
    )
    try:
        return handler(args, context)
    except BrokenPipeError:
        # The reader of stdout went away (``ncpaste get KEY | head``). Point
        # stdout at /dev/null so the interpreter's final flush cannot fail too.
        _silence_stdout()
        _error("output closed before everything was written")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (AdminError, PasteError) as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except (OSError, lmdb.Error) as exc:
        _error(_describe(exc))
        return EXIT_FAILURE


# -- shared plumbing ------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    data_dir: Path
    now_ms: int
    quiet: bool

    def progress(self, total: int | None, what: str, *, unit: str = "") -> Progress:
        return Progress(total, what, _NullStream() if self.quiet else sys.stderr, unit=unit)


class _NullStream:
    """Where ``--quiet`` progress goes."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@dataclass(frozen=True)
class _Dbs:
    pastes: Any
    expiry: Any
    pool: Any


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _error(message: str) -> None:
    print(f"ncpaste: error: {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"ncpaste: {message}", file=sys.stderr, flush=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (tests): nothing will flush into a pipe


def iso_utc(ms: int) -> str:
    """Unix milliseconds as ``2026-09-21T10:00:00.000Z``."""
    try:
        moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms since the epoch"  # beyond datetime's years 1..9999
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key_bytes(key: str) -> bytes | None:
    """The LMDB key for a name from the command line, or None if no paste can have it."""
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:  # undecodable argv bytes (surrogate escapes)
        return None
    return raw if 0 < len(raw) <= MAX_LMDB_KEY_BYTES else None


def _is_valid_name(key: str) -> bool:
    return keys.is_plausible_name(key) and key.lower() not in keys.RESERVED_NAMES


def _open_readonly(data_dir: Path) -> lmdb.Environment:
    try:
        return open_readonly(data_dir)
    except ValueError as exc:
        raise AdminError(str(exc)) from None


def _begin_read(env: lmdb.Environment, *, buffers: bool = False) -> lmdb.Transaction[bytes | memoryview]:
    try:
        return env.begin(buffers=True) if buffers else env.begin()
    except lmdb.MapResizedError:
        env.set_mapsize(0)  # the server grew the file since we opened it: adopt its size
        return env.begin(buffers=True) if buffers else env.begin()


@contextmanager
def _reading(
    data_dir: Path, *, buffers: bool = False
) -> Iterator[tuple[lmdb.Environment, lmdb.Transaction[bytes | memoryview], _Dbs]]:
    """One read-only snapshot of a data dir. With ``buffers=True`` values are
    zero-copy views valid only inside the block (a full scan must not copy
    every body)."""
    env = _open_readonly(data_dir)
    try:
        dbs = _Dbs(
            env.open_db(PASTES_DB, create=False),
            env.open_db(EXPIRY_DB, create=False),
            env.open_db(POOL_DB, create=False),
        )
        with _begin_read(env, buffers=buffers) as txn:
            yield env, txn, dbs
    finally:
        env.close()


# -- stats, get, delete, sweep ------------------------------------------------------------


def _stats(args: argparse.Namespace, context: _Context) -> int:
    now_ms = context.now_ms
    live = expired = damaged = original_bytes = stored_bytes = 0
    oldest_created: int | None = None
    next_expiry: int | None = None
    with _reading(context.data_dir, buffers=True) as (env, txn, dbs):
        entries = txn.stat(dbs.pastes)["entries"]
        pool_keys = txn.stat(dbs.pool)["entries"]
        expiry_entries = txn.stat(dbs.expiry)["entries"]
        with context.progress(entries, "scanning pastes") as progress:
            for _, record in txn.cursor(db=dbs.pastes):
                progress.advance()
                try:
                    meta = codec.decode_meta(record)
                except (ValueError, struct.error):
                    damaged += 1  # `ncpaste check` names them
                    continue
                if meta.expires_ms <= now_ms:
                    expired += 1
                    continue
                live += 1
                original_bytes += meta.size
                stored_bytes += len(record) - codec.HEADER_BYTES
                if oldest_created is None or meta.created_ms < oldest_created:
                    oldest_created = meta.created_ms
                if next_expiry is None or meta.expires_ms < next_expiry:
                    next_expiry = meta.expires_ms
        used_bytes = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    file_bytes = (context.data_dir / DATA_FILE).stat().st_size
    # One convention everywhere (README, bench): stored ÷ original, so 0.216
    # means the store keeps 21.6 % of what was pasted.
    ratio = round(stored_bytes / original_bytes, 3) if original_bytes else None
    report = {
        "as_of": iso_utc(now_ms),
        "pastes": live,
        "expired_not_swept": expired,
        "damaged_records": damaged,
        "original_bytes": original_bytes,
        "stored_bytes": stored_bytes,
        "stored_per_original": ratio,
        "pool_keys": pool_keys,
        "expiry_entries": expiry_entries,
        "oldest_created": None if oldest_created is None else iso_utc(oldest_created),
        "next_expiry": None if next_expiry is None else iso_utc(next_expiry),
        "data_file_bytes": file_bytes,
        "used_bytes": used_bytes,
    }
    if args.json:
        print(json.dumps(report), flush=True)
        return EXIT_OK
    lines = [
        ("pastes", f"{live} live, {expired} expired not yet swept"
                   + (f", {damaged} damaged (run ncpaste check)" if damaged else "")),
        ("original bytes", f"{original_bytes} ({human_bytes(original_bytes)})"),
        ("stored bytes", f"{stored_bytes} ({human_bytes(stored_bytes)}, zstd)"
                         + (f", {ratio:.3f} of the original (stored ÷ original)" if ratio is not None else "")),
        ("key pool", f"{pool_keys} keys"),
        ("expiry index", f"{expiry_entries} entries"),
        ("oldest paste", report["oldest_created"] or "-"),
        ("next expiry", report["next_expiry"] or "-"),
        ("data file", f"{file_bytes} bytes ({human_bytes(file_bytes)}), {used_bytes} in use"),
    ]
    for label, value in lines:
        print(f"{label + ':':<16}{value}")
    sys.stdout.flush()
    return EXIT_OK


def _get(args: argparse.Namespace, context: _Context) -> int:
    raw = _key_bytes(args.key)
    record = None
    if raw is not None:
        with _reading(context.data_dir) as (_, txn, dbs):
            record = txn.get(raw, db=dbs.pastes)  # a copy: outlives the transaction
    if record is None:
        raise AdminError("no such paste")
    try:
        meta = codec.decode_meta(record)
    except (ValueError, struct.error):
        raise AdminError("stored paste is damaged (run ncpaste check)") from None
    if meta.expires_ms <= context.now_ms:
        raise AdminError("no such paste")
    if args.meta:
        flags = [name for name, on in (("burn", meta.burn), ("alias", meta.is_alias)) if on]
        print(f"key:      {args.key}")
        print(f"created:  {iso_utc(meta.created_ms)}")
        print(f"expires:  {iso_utc(meta.expires_ms)}")
        print(f"size:     {meta.size} bytes")
        print(f"stored:   {len(record) - codec.HEADER_BYTES} bytes (zstd)")
        print(f"flags:    {', '.join(flags) or 'none'}", flush=True)
        return EXIT_OK
    if meta.is_open:
        raise AdminError("that paste is still being written (live): read it with curl to follow it")
    body = codec.open_body(codec.record_frame(record), meta)  # CorruptPaste: never wrong bytes
    out = sys.stdout.buffer
    out.write(body)
    out.flush()
    return EXIT_OK


def _delete(args: argparse.Namespace, context: _Context) -> int:
    if _key_bytes(args.key) is None:
        raise AdminError("no such paste")
    # LmdbStore's own removal: the one place that knows everything a paste
    # has (record, expiry entry, the groups of an open live paste).
    _open_readonly(context.data_dir).close()  # validates; never creates a data dir
    store = LmdbStore(context.data_dir)
    try:
        removed = store.remove(args.key, context.now_ms)
    finally:
        store.close()
    if removed is None:
        raise AdminError("no such paste")
    log.info("admin deleted paste %s", args.key)
    print(f"deleted {args.key}" + (" (its record was damaged)" if removed == "damaged" else ""), flush=True)
    return EXIT_OK


def _sweep(args: argparse.Namespace, context: _Context) -> int:
    removed = 0
    # LmdbStore's own sweep: the one place that knows how to skip stale entries.
    _open_readonly(context.data_dir).close()  # validates; never creates a data dir
    store = LmdbStore(context.data_dir)
    try:
        with context.progress(None, "sweeping expired pastes") as progress:
            while True:
                try:
                    batch = store.sweep_expired(context.now_ms, SWEEP_BATCH)
                except (ValueError, struct.error):
                    raise AdminError("a damaged record stopped the sweep: run ncpaste check") from None
                removed += batch
                progress.advance(batch)
                if batch < SWEEP_BATCH:
                    break
    finally:
        store.close()
    print(f"removed {removed} expired pastes", flush=True)
    return EXIT_OK


# -- export ----------------------------------------------------------------------------


def _export(args: argparse.Namespace, context: _Context) -> int:
    to_stdout = args.file == "-"
    if to_stdout and is_tty(sys.stdout):
        raise AdminError("refusing to write an export to a terminal: give a FILE or redirect stdout")
    target = None if to_stdout else Path(args.file)
    if target is not None and target.exists() and not args.force:
        raise AdminError(f"{target} exists: remove it or use --force")
    exported = expired = body_bytes = 0
    problems = _LineReport()
    with _reading(context.data_dir, buffers=True) as (_, txn, dbs):
        entries = txn.stat(dbs.pastes)["entries"]
        with _export_sink(target) as out:
            header = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": iso_utc(context.now_ms)}
            out.write(_json_line(header))
            with context.progress(entries, "exporting pastes") as progress:
                for raw, record in txn.cursor(db=dbs.pastes):
                    progress.advance()
                    line = _export_line(raw, record, context.now_ms)
                    if line is None:
                        expired += 1
                    elif isinstance(line, str):
                        problems.add(progress, f"paste {_shown(raw)}: {line}, not exported")
                    else:
                        out.write(line)
                        exported += 1
                        body_bytes += codec.decode_meta(record).size
            out.write(_json_line({"format": EXPORT_END_FORMAT, "pastes": exported}))
    problems.finish()
    summary = (
        f"exported {exported} pastes ({human_bytes(body_bytes)}) to {'stdout' if to_stdout else target}"
        + (f"; {expired} expired ones left out" if expired else "")
    )
    if to_stdout:
        _note(summary)
    else:
        print(summary, flush=True)
    if problems.count:
        _error(f"{problems.count} damaged pastes were not exported (run ncpaste check)")
        return EXIT_FAILURE
    return EXIT_OK


def _export_line(raw: bytes | memoryview, record: bytes | memoryview, now_ms: int) -> bytes | str | None:
    """The export line of one record; None if expired; a reason if damaged."""
    try:
        key = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        return "key is not a valid name"
    if not keys.is_plausible_name(key):
        return "key is not a valid name"
    try:
        meta = codec.decode_meta(record)
    except (ValueError, struct.error):
        return "unreadable header"
    if meta.expires_ms <= now_ms or meta.is_open:
        return None  # expired, or a live paste still being written: not exported
    try:
        body = codec.open_body(codec.record_frame(record), meta)
    except PasteError:
        return "body is damaged"
    return _json_line(
        {
            "key": key,
            "created_ms": meta.created_ms,
            "expires_ms": meta.expires_ms,
            "burn": meta.burn,
            "alias": meta.is_alias,
            "token_sha256": meta.token_hash.hex(),
            "size": meta.size,
            "blake2b": meta.checksum.hex(),
            "body_b64": base64.b64encode(body).decode("ascii"),
        }
    )


def _json_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


@contextmanager
def _export_sink(target: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a temporary file beside ``target`` that replaces it only
    once complete and synced: a failed export never leaves a file that looks
    whole."""
    if target is None:
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    out = open(partial, "xb")
    try:
        yield out
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(partial, target)
    except BaseException:
        out.close()
        partial.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LineReport:
    """Per-item problem lines on stderr: the first MAX_LINES_REPORTED are
    listed, the rest counted."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, progress: Progress, message: str) -> None:
        self.count += 1
        if self.count <= MAX_LINES_REPORTED:
            progress.note(f"ncpaste: {message}")

    def finish(self) -> None:
        if self.count > MAX_LINES_REPORTED:
            _note(f"... and {self.count - MAX_LINES_REPORTED} more not listed")


# -- import --------------------------------------------------------------------------------


class _Invalid(Exception):
    """One import line is unusable; the message says why (never its contents)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    line: int
    key: str
    expires_ms: int
    record: bytes


@dataclass(frozen=True, slots=True)
class _End:
    pastes: int


@dataclass
class _ImportCounts:
    imported: int = 0
    conflicts: int = 0
    expired: int = 0
    invalid: int = 0
    paste_lines: int = 0
    end: _End | None = None
    pending: list[_Entry] = field(default_factory=list)
    pending_bytes: int = 0


def _import(args: argparse.Namespace, context: _Context) -> int:
    counts = _ImportCounts()
    problems = _LineReport()
    with _open_source(args.file) as (source, source_bytes):
        lines = _read_lines(source)
        header_bytes = _read_header(lines)
        target: _DryRun | _Writer = (
            _DryRun(context.data_dir, context.now_ms) if args.dry_run else _Writer(context.data_dir, context.now_ms)
        )
        try:
            with context.progress(source_bytes, "importing", unit="B") as progress:
                progress.advance(header_bytes)
                try:
                    _import_lines(lines, target, counts, problems, progress, context.now_ms)
                except (Exception, KeyboardInterrupt):
                    if not args.dry_run:
                        progress.note(f"ncpaste: {counts.imported} pastes were imported before this failure")
                    raise
            warning = target.growth_warning() if isinstance(target, _Writer) else None
        finally:
            target.close()
    problems.finish()
    if warning:
        _note(f"warning: {warning}")
    verb = "would import" if args.dry_run else "imported"
    print(
        f"{'dry run: ' if args.dry_run else ''}{verb} {counts.imported} pastes; "
        f"skipped {counts.conflicts} conflicts (key taken), {counts.expired} expired, "
        f"{counts.invalid} invalid lines",
        flush=True,
    )
    failed = False
    if counts.invalid:
        _error(f"{counts.invalid} invalid lines were not imported (listed above)")
        failed = True
    if counts.end is None:
        _error("the file has no end line: it is truncated or incomplete")
        failed = True
    elif counts.end.pastes != counts.paste_lines:
        _error(f"the end line says {counts.end.pastes} pastes but the file holds {counts.paste_lines}")
        failed = True
    return EXIT_FAILURE if failed else EXIT_OK


def _import_lines(
    lines: Iterator[tuple[int, bytes | None, int]],
    target: _DryRun | _Writer,
    counts: _ImportCounts,
    problems: _LineReport,
    progress: Progress,
    now_ms: int,
) -> None:
    def flush() -> None:
        if not counts.pending:
            return
        results = target.put_batch(counts.pending)
        for entry, stored in zip(counts.pending, results):
            if stored:
                counts.imported += 1
            else:
                counts.conflicts += 1
                problems.add(progress, f"line {entry.line}: key {entry.key!r} is taken by a live paste, skipped")
        counts.pending, counts.pending_bytes = [], 0

    for number, line, length in lines:
        progress.advance(length)
        if line is not None and not line.strip():
            continue  # blank lines carry nothing; tolerate them
        if counts.end is not None:
            counts.invalid += 1
            problems.add(progress, f"line {number}: invalid: data after the end line")
            continue
        try:
            if line is None:
                raise _Invalid(f"line longer than {MAX_IMPORT_LINE_BYTES} bytes")
            parsed = _parse_line(number, line, now_ms)
        except _Invalid as exc:
            counts.paste_lines += 1
            counts.invalid += 1
            problems.add(progress, f"line {number}: invalid: {exc}")
            continue
        if isinstance(parsed, _End):
            counts.end = parsed
            continue
        counts.paste_lines += 1
        if parsed is None:
            counts.expired += 1
            continue
        counts.pending.append(parsed)
        counts.pending_bytes += len(parsed.record)
        if len(counts.pending) >= IMPORT_BATCH_ITEMS or counts.pending_bytes >= IMPORT_BATCH_BYTES:
            flush()
    flush()


@contextmanager
def _open_source(name: str) -> Iterator[tuple[BinaryIO, int | None]]:
    """The import file (or stdin) and its size when known (for progress)."""
    if name == "-":
        stream = sys.stdin.buffer
        yield stream, _regular_size(stream)
        return
    with open(name, "rb") as stream:
        yield stream, _regular_size(stream)


def _regular_size(stream: IO[bytes]) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line or None if over-long, bytes consumed)."""
    number = 0
    while True:
        line = stream.readline(MAX_IMPORT_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) <= MAX_IMPORT_LINE_BYTES or line.endswith(b"\n"):
            yield number, line, len(line)
            continue
        consumed = len(line)
        del line  # do not hold a gigabyte while skipping the rest
        while True:
            chunk = stream.readline(_SKIP_CHUNK_BYTES)
            consumed += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                break
        yield number, None, consumed


def _read_header(lines: Iterator[tuple[int, bytes | None, int]]) -> int:
    """Check line 1 is a header this version reads; return its length."""
    expected = f'{{"format": "{EXPORT_FORMAT}", "version": {EXPORT_VERSION}, ...}}'
    first = next(lines, None)
    if first is None:
        raise AdminError("the file is empty: not an ncpaste export")
    _, line, length = first
    try:
        header = json.loads(line) if line is not None else None
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise AdminError(f"line 1 is not an ncpaste export header ({expected})")
    version = header.get("version")
    if version != EXPORT_VERSION or isinstance(version, bool):
        raise AdminError(f"export format version {version!r} is not supported (this ncpaste reads {EXPORT_VERSION})")
    return length


def _parse_line(number: int, line: bytes, now_ms: int) -> _Entry | _End | None:
    """A validated paste ready to store, the end line, or None if expired.
    Raises _Invalid naming what is wrong."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise _Invalid("not JSON") from None
    if not isinstance(obj, dict):
        raise _Invalid("not a JSON object")
    if obj.get("format") == EXPORT_END_FORMAT:
        return _End(_int_field(obj, "pastes", 0, MAX_TIME_MS))
    missing = [name for name in PASTE_FIELDS if name not in obj]
    if missing:
        raise _Invalid("missing " + ", ".join(missing))
    key = obj["key"]
    if not isinstance(key, str) or not _is_valid_name(key):
        raise _Invalid("key is not a valid key or alias name")
    created_ms = _int_field(obj, "created_ms", 0, MAX_TIME_MS)
    expires_ms = _int_field(obj, "expires_ms", 0, MAX_TIME_MS)
    if expires_ms <= created_ms:
        raise _Invalid("expires_ms is not after created_ms")
    size = _int_field(obj, "size", 0, MAX_TIME_MS)
    burn, alias = _bool_field(obj, "burn"), _bool_field(obj, "alias")
    token_hash = _hex_field(obj, "token_sha256", codec.TOKEN_HASH_BYTES)
    digest = _hex_field(obj, "blake2b", codec.CHECKSUM_BYTES)
    if expires_ms <= now_ms:
        return None  # checked before decoding: an expired body is never needed
    encoded = obj["body_b64"]
    if not isinstance(encoded, str):
        raise _Invalid("body_b64 is not a string")
    try:
        body = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid("body_b64 is not valid base64") from None
    if len(body) != size:
        raise _Invalid(f"body is {len(body)} bytes, size says {size}")
    if codec.checksum(body) != digest:
        raise _Invalid("body does not match its blake2b checksum")
    flags = (FLAG_BURN if burn else 0) | (FLAG_ALIAS if alias else 0)
    meta = PasteMeta(created_ms, expires_ms, size, digest, token_hash, flags)
    return _Entry(number, key, expires_ms, codec.encode_record(meta, codec.compress(body)))


def _int_field(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Invalid(f"{name} is not a whole number in {low}..{high}")
    return value


def _bool_field(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name)
    if not isinstance(value, bool):
        raise _Invalid(f"{name} is not true or false")
    return value


def _hex_field(obj: dict[str, Any], name: str, size: int) -> bytes:
    value = obj.get(name)
    if not isinstance(value, str) or len(value) != 2 * size or not value.isascii() or not _HEX_RE.fullmatch(value.encode()):
        raise _Invalid(f"{name} is not {2 * size} hex digits")
    return bytes.fromhex(value)


class _WritableEnv:
    """The data dir opened for writing with the options ``LmdbStore`` uses
    (the server may have it open too; LMDB's lock file makes us take turns).
    Write transactions grow the map when it is full and adopt a map the server
    grew, as ``LmdbStore`` does."""

    def __init__(self, data_dir: Path, *, create: bool) -> None:
        if create:
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            _open_readonly(data_dir).close()  # validates; closed before we reopen it
        data_file = data_dir / DATA_FILE
        existing = data_file.stat().st_size if data_file.exists() else 0
        self._env = lmdb.open(
            str(data_dir),
            map_size=max(INITIAL_MAP_BYTES, 2 * existing),
            max_dbs=MAX_DBS,
            max_readers=MAX_READERS,
            subdir=True,
            sync=True,
            metasync=True,
            readahead=False,
            meminit=False,
        )
        try:
            self.dbs = _Dbs(
                self._env.open_db(PASTES_DB),
                self._env.open_db(EXPIRY_DB),
                self._env.open_db(POOL_DB),
            )
        except BaseException:
            self._env.close()
            raise

    def close(self) -> None:
        self._env.close()

    def used_bytes(self) -> int:
        return (self._env.info()["last_pgno"] + 1) * self._env.stat()["psize"]

    def write(self, work: Callable[[lmdb.Transaction[bytes]], Any]) -> Any:
        """Run ``work`` in one durable write transaction and return its result.
        ``work`` may run more than once: a retry follows an aborted attempt."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    return work(txn)
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)  # the server grew the map: adopt it, retry
            except lmdb.MapFullError:
                self._grow()  # the aborted transaction left nothing behind

    def _grow(self) -> None:
        current = self._env.info()["map_size"]
        if current >= MAX_MAP_BYTES:
            raise AdminError("storage full: the store reached its maximum size")
        self._env.set_mapsize(current * 2)
        log.info("LMDB map grown from %d to %d bytes", current, current * 2)


class _Writer:
    """Import's write path: direct write transactions in ``lmdb_store``'s
    layout (record under the key, ``>Q`` expiry + key in the expiry index, the
    key removed from the pool so it is never handed out again), one per batch.

    A live paste under the same key is never overwritten; an expired one not
    yet swept is replaced, as when the server claims an alias (the name is
    free once its paste has expired).
    """

    def __init__(self, data_dir: Path, now_ms: int) -> None:
        self.now_ms = now_ms
        self._store = _WritableEnv(data_dir, create=True)
        self._used_before = self._store.used_bytes()

    def close(self) -> None:
        self._store.close()

    def growth_warning(self) -> str | None:
        """A warning when the import grew the data past what a server already
        running on this data dir is sure to have mapped: ``LmdbStore`` maps at
        least INITIAL_MAP_BYTES, and at least what the data held when we
        started (else it would already be failing). Past that, LMDB refuses
        its transactions (MDB_MAP_RESIZED) until it adopts the new size."""
        used_after = self._store.used_bytes()
        if used_after <= max(INITIAL_MAP_BYTES, self._used_before):
            return None
        return (
            f"the store's data grew from {human_bytes(self._used_before)} to {human_bytes(used_after)}: "
            "a server that was already running on this data dir may fail with MDB_MAP_RESIZED "
            "until it is restarted"
        )

    def put_batch(self, batch: list[_Entry]) -> list[bool]:
        """Store a batch in one transaction; True per stored entry, False per conflict."""
        return self._store.write(lambda txn: [self._put(txn, entry) for entry in batch])

    def _put(self, txn: lmdb.Transaction[bytes], entry: _Entry) -> bool:
        dbs = self._store.dbs
        raw = entry.key.encode("ascii")
        existing = txn.get(raw, db=dbs.pastes)
        if existing is not None:
            try:
                meta = codec.decode_meta(existing)
            except (ValueError, struct.error):
                return False  # unreadable: leave it for `ncpaste check`, never overwrite
            if meta.expires_ms > self.now_ms:
                return False
            txn.delete(_EXPIRY.pack(meta.expires_ms) + raw, db=dbs.expiry)
        txn.delete(raw, db=dbs.pool)
        txn.put(raw, entry.record, db=dbs.pastes)
        txn.put(_EXPIRY.pack(entry.expires_ms) + raw, b"", db=dbs.expiry)
        return True


class _DryRun:
    """What ``_Writer`` would do, judged from a read-only snapshot; creates
    nothing. Remembers the keys it accepted so a key repeated in the file is
    a conflict, as it would be for real."""

    def __init__(self, data_dir: Path, now_ms: int) -> None:
        self.now_ms = now_ms
        exists = (data_dir / DATA_FILE).is_file()
        self._env = _open_readonly(data_dir) if exists else None
        self._pastes = self._env.open_db(PASTES_DB, create=False) if self._env else None
        self._accepted: set[str] = set()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()

    def put_batch(self, batch: list[_Entry]) -> list[bool]:
        if self._env is None:
            return [self._accept(entry.key, None) for entry in batch]
        with _begin_read(self._env) as txn:
            return [self._accept(entry.key, txn.get(entry.key.encode("ascii"), db=self._pastes)) for entry in batch]

    def _accept(self, key: str, existing: bytes | memoryview | None) -> bool:
        if key in self._accepted:
            return False
        if existing is not None:
            try:
                if codec.decode_meta(existing).expires_ms > self.now_ms:
                    return False
            except (ValueError, struct.error):
                return False
        self._accepted.add(key)
        return True
