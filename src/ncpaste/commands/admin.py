"""Admin commands on a data dir: stats, get, delete, sweep, export, import.

They are operations on the store (``store.AdminStore``), opened by the
store's own factory, so they work on the embedded LMDB store and on
``--store s3://`` alike, in their own process next to a live ``ncpaste
serve``. On LMDB the read commands open the data dir read-only and read one
snapshot (readers never block the server); ``delete``, ``sweep`` and
``import`` write through the store's own transactions, in batches, so the
server's commits interleave. On S3 a scan sees the bucket as listed.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import trio

from ncpaste.commands.common import (
    DATA_DIR_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    STORE_HELP,
    data_dir_of,
    is_tty,
    store_of,
)
from ncpaste.commands.progress import Progress, human_bytes
from ncpaste.config import Config
from ncpaste.core import keys
from ncpaste.core.errors import CorruptPaste, PasteError
from ncpaste.core.units import iso_utc
from ncpaste.store import AdminStore, Removal, Restored, Scanned, StoreStats, records
from ncpaste.store.factory import Access, StoreMissing, StoreOpenError, open_store
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
# Per-line import reports (invalid lines, conflicts) listed on stderr before
# the rest are only counted: enough to see the pattern, never a flood.
MAX_LINES_REPORTED = 1000
# No stored name is longer (LMDB's compile-time key limit, MDB_MAXKEYSIZE):
# a longer one on the command line is "no such paste" without asking.
MAX_NAME_BYTES = 511
# Largest value of the signed 64-bit time fields in a record header.
MAX_TIME_MS = (1 << 63) - 1

_HEX_RE = re.compile(rb"[0-9a-fA-F]*")



class AdminError(Exception):
    """An expected failure: reported as one ``ncpaste: error: ...`` line."""


# -- argument parsing -------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Register the admin subcommands on an argparse subparsers object."""

    def command(name: str, handler: Callable[..., Awaitable[int]], help: str, description: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help, description=description)
        parser.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
        parser.add_argument("--store", metavar="s3://BUCKET/PREFIX?endpoint=URL", help=STORE_HELP)
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
    disk, an unreachable bucket) are one ``ncpaste: error: ...`` line on
    stderr, never a traceback. ``clock_ms`` (wall-clock milliseconds) is
    injectable for tests.
    """
    handler = getattr(args, "admin_handler", None)
    if handler is None:
        _error("not an admin command")
        return EXIT_FAILURE
    clock = clock_ms or _wall_clock_ms
    context = _Context(
        config=Config(data_dir=data_dir_of(args), store=store_of(args)),
        clock_ms=clock,
        now_ms=clock(),
        quiet=getattr(args, "quiet", False),
    )
    try:
        return trio.run(handler, args, context)
    except BaseException as caught:
        exc = _single(caught)
        if isinstance(exc, BrokenPipeError):
            # The reader of stdout went away (``ncpaste get KEY | head``). Point
            # stdout at /dev/null so the interpreter's final flush cannot fail too.
            _silence_stdout()
            _error("output closed before everything was written")
            return EXIT_FAILURE
        if isinstance(exc, KeyboardInterrupt):
            _error("interrupted")
            return EXIT_INTERRUPTED
        if isinstance(exc, (AdminError, PasteError, StoreOpenError)):
            _error(str(exc))
            return EXIT_FAILURE
        if isinstance(exc, OSError) or _is_lmdb_error(exc):
            _error(_describe(exc))
            return EXIT_FAILURE
        raise


def _single(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups (trio's nurseries wrap
    what the store's tasks raise); a group of several stays a group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _is_lmdb_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "lmdb"


# -- shared plumbing ------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    config: Config
    clock_ms: Callable[[], int]
    #: The command's "now": what is expired, what an export says it was made at.
    now_ms: int
    quiet: bool

    def progress(self, total: int | None, what: str, *, unit: str = "") -> Progress:
        return Progress(total, what, _NullStream() if self.quiet else sys.stderr, unit=unit)

    def store(self, access: Access) -> AbstractAsyncContextManager[AdminStore]:
        """The store the command line names, opened for ``access``; the
        clock stays at ``now_ms`` so one command judges expiry once."""
        return open_store(self.config, lambda: self.now_ms, access)


class _NullStream:
    """Where ``--quiet`` progress goes."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


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


def _key_bytes(key: str) -> bytes | None:
    """The LMDB key for a name from the command line, or None if no paste can have it."""
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:  # undecodable argv bytes (surrogate escapes)
        return None
    return raw if 0 < len(raw) <= MAX_NAME_BYTES else None


def _is_valid_name(key: str) -> bool:
    return keys.is_plausible_name(key) and key.lower() not in keys.RESERVED_NAMES


# -- stats, get, delete, sweep ------------------------------------------------------------


async def _stats(args: argparse.Namespace, context: _Context) -> int:
    now_ms = context.now_ms
    live = expired = damaged = original_bytes = stored_bytes = 0
    oldest_created: int | None = None
    next_expiry: int | None = None
    async with context.store(Access.READ) as store:
        counts = await store.stats()
        with context.progress(_known(counts.pastes), "scanning pastes") as progress:
            async for found in store.scan(bodies=False):
                progress.advance()
                meta = found.meta
                if meta is None:
                    damaged += 1  # `ncpaste check` names them
                    continue
                if meta.expires_ms <= now_ms:
                    expired += 1
                    continue
                live += 1
                original_bytes += meta.size
                stored_bytes += found.stored_bytes
                if oldest_created is None or meta.created_ms < oldest_created:
                    oldest_created = meta.created_ms
                if next_expiry is None or meta.expires_ms < next_expiry:
                    next_expiry = meta.expires_ms
    # One convention everywhere (README, bench): stored ÷ original, so 0.216
    # means the store keeps 21.6 % of what was pasted.
    ratio = round(stored_bytes / original_bytes, 3) if original_bytes else None
    # What only the embedded store counts (S3 has no pool, index or file here): null.
    pool_keys, expiry_entries = _known(counts.pool_keys), _known(counts.expiry_entries)
    file_bytes, used_bytes = _known(counts.file_bytes), _known(counts.disk_bytes)
    commits = _known(counts.commits)
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
        "commits": commits,
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
        ("key pool", None if pool_keys is None else f"{pool_keys} keys"),
        ("expiry index", None if expiry_entries is None else f"{expiry_entries} entries"),
        ("oldest paste", report["oldest_created"] or "-"),
        ("next expiry", report["next_expiry"] or "-"),
        ("data file", None if file_bytes is None else f"{file_bytes} bytes ({human_bytes(file_bytes)}), {used_bytes} in use"),
        ("commits", None if commits is None else f"{commits} synced write transactions"),
    ]
    for label, value in lines:
        if value is not None:
            print(f"{label + ':':<16}{value}")
    sys.stdout.flush()
    return EXIT_OK


def _known(count: int) -> int | None:
    """A count from ``StoreStats``, None where the engine keeps none (-1)."""
    return None if count < 0 else count


async def _get(args: argparse.Namespace, context: _Context) -> int:
    async with context.store(Access.READ) as store:
        paste = None
        if _key_bytes(args.key) is not None:
            try:
                paste = await store.get(args.key)
            except (ValueError, struct.error, CorruptPaste):
                raise AdminError("stored paste is damaged (run ncpaste check)") from None
        if paste is None:
            raise AdminError("no such paste")
        meta = paste.meta
        if args.meta:
            flags = [name for name, on in (("burn", meta.burn), ("alias", meta.is_alias)) if on]
            print(f"key:      {args.key}")
            print(f"created:  {iso_utc(meta.created_ms)}")
            print(f"expires:  {iso_utc(meta.expires_ms)}")
            print(f"size:     {meta.size} bytes")
            print(f"stored:   {len(paste.frame)} bytes (zstd)")
            print(f"flags:    {', '.join(flags) or 'none'}", flush=True)
            return EXIT_OK
        if meta.is_open:
            raise AdminError("that paste is still being written (live): read it with curl to follow it")
        body = await records.open_stored(paste)  # CorruptPaste: never wrong bytes
    out = sys.stdout.buffer
    out.write(body)
    out.flush()
    return EXIT_OK


async def _delete(args: argparse.Namespace, context: _Context) -> int:
    async with context.store(Access.CHANGE) as store:
        # The store's own removal: the one place that knows everything a
        # paste has (record, expiry entry, the groups of an open live paste).
        removed = await store.remove(args.key) if _key_bytes(args.key) is not None else None
    if removed is None:
        raise AdminError("no such paste")
    log.info("admin deleted paste %s", args.key)
    print(f"deleted {args.key}" + (" (its record was damaged)" if removed is Removal.DAMAGED else ""), flush=True)
    return EXIT_OK


async def _sweep(args: argparse.Namespace, context: _Context) -> int:
    async with context.store(Access.CHANGE) as store:
        # The store's own sweep, in its own bounded batches.
        with context.progress(None, "sweeping expired pastes") as progress:
            try:
                removed = await store.sweep_expired()
            except (ValueError, struct.error):
                raise AdminError("a damaged record stopped the sweep: run ncpaste check") from None
            progress.advance(removed)
    print(f"removed {removed} expired pastes", flush=True)
    return EXIT_OK


# -- export ----------------------------------------------------------------------------


async def _export(args: argparse.Namespace, context: _Context) -> int:
    to_stdout = args.file == "-"
    if to_stdout and is_tty(sys.stdout):
        raise AdminError("refusing to write an export to a terminal: give a FILE or redirect stdout")
    target = None if to_stdout else Path(args.file)
    if target is not None and target.exists() and not args.force:
        raise AdminError(f"{target} exists: remove it or use --force")
    exported = expired = body_bytes = 0
    problems = _LineReport()
    async with context.store(Access.READ) as store:
        total = _known((await store.stats()).pastes)
        with _export_sink(target) as out:
            header = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": iso_utc(context.now_ms)}
            out.write(_json_line(header))
            with context.progress(total, "exporting pastes") as progress:
                async for found in store.scan(bodies=True):
                    progress.advance()
                    line = _export_line(found, context.now_ms)
                    if line is None:
                        expired += 1
                    elif isinstance(line, str):
                        problems.add(progress, f"paste {_shown(found.key)}: {line}, not exported")
                    else:
                        out.write(line)
                        exported += 1
                        body_bytes += found.meta.size if found.meta else 0
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


def _export_line(found: Scanned, now_ms: int) -> bytes | str | None:
    """The export line of one record; None if expired; a reason if damaged."""
    try:
        key = found.key.decode("ascii")
    except UnicodeDecodeError:
        return "key is not a valid name"
    if not keys.is_plausible_name(key):
        return "key is not a valid name"
    meta = found.meta
    if meta is None:
        return "unreadable header"
    if meta.expires_ms <= now_ms or meta.is_open:
        return None  # expired, or a live paste still being written: not exported
    try:
        body = records.open_frame(found.frame if found.frame is not None else b"", meta)
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
            "blake2b": records.export_checksum(meta, body).hex(),
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
    paste: Restored


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


async def _import(args: argparse.Namespace, context: _Context) -> int:
    counts = _ImportCounts()
    problems = _LineReport()
    with _open_source(args.file) as (source, source_bytes):
        lines = _read_lines(source)
        header_bytes = _read_header(lines)
        async with _import_target(context, dry_run=args.dry_run) as target:
            with context.progress(source_bytes, "importing", unit="B") as progress:
                progress.advance(header_bytes)
                try:
                    await _import_lines(lines, target, counts, problems, progress, context.now_ms)
                except (Exception, KeyboardInterrupt):
                    if not args.dry_run:
                        progress.note(f"ncpaste: {counts.imported} pastes were imported before this failure")
                    raise
            warning = await target.growth_warning()
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


async def _import_lines(
    lines: Iterator[tuple[int, bytes | None, int]],
    target: _Writer | _DryRun,
    counts: _ImportCounts,
    problems: _LineReport,
    progress: Progress,
    now_ms: int,
) -> None:
    async def flush() -> None:
        if not counts.pending:
            return
        results = await target.put_batch([entry.paste for entry in counts.pending])
        for entry, stored in zip(counts.pending, results):
            if stored:
                counts.imported += 1
            else:
                counts.conflicts += 1
                problems.add(progress, f"line {entry.line}: key {entry.paste.key!r} is taken by a live paste, skipped")
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
        counts.pending_bytes += parsed.paste.meta.size
        if len(counts.pending) >= IMPORT_BATCH_ITEMS or counts.pending_bytes >= IMPORT_BATCH_BYTES:
            await flush()
    await flush()


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
    token_hash = _hex_field(obj, "token_sha256", records.TOKEN_HASH_BYTES)
    digest = _hex_field(obj, "blake2b", records.CHECKSUM_BYTES)
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
    try:
        paste = records.restored(
            key, created_ms, expires_ms, burn=burn, alias=alias, token_hash=token_hash, checksum=digest, body=body
        )
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return _Entry(number, paste)


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


@asynccontextmanager
async def _import_target(context: _Context, *, dry_run: bool) -> AsyncIterator[_Writer | _DryRun]:
    """Where import lines go: the store (created if missing), or for a dry
    run a judge that reads the store as it is (if there is one) and writes nothing."""
    if not dry_run:
        async with context.store(Access.FILL) as store:
            yield await _Writer.start(store)
        return
    async with AsyncExitStack() as stack:
        try:
            found: AdminStore | None = await stack.enter_async_context(context.store(Access.READ))
        except StoreMissing:
            found = None  # nothing stored yet: every live paste would be imported
        yield _DryRun(found)


class _Writer:
    """Import's write path: the store's own ``restore``, one batch a
    transaction (LMDB) or a few PUTs at a time (S3)."""

    def __init__(self, store: AdminStore, before: StoreStats) -> None:
        self._store = store
        self._before = before

    @classmethod
    async def start(cls, store: AdminStore) -> _Writer:
        return cls(store, await store.stats())

    async def put_batch(self, batch: list[Restored]) -> list[bool]:
        """True per stored paste, False per conflict (a live paste holds the name)."""
        return await self._store.restore(batch)

    async def growth_warning(self) -> str | None:
        """A warning when the import grew the data past what a server already
        running on this data dir is sure to have mapped: the store's map
        floor, and at least what the data held when we started (else it
        would already be failing). Past that, LMDB refuses its transactions
        (MDB_MAP_RESIZED) until it adopts the new size. None on an engine
        with no map (S3)."""
        before, used_after = self._before, (await self._store.stats()).disk_bytes
        if before.map_floor_bytes < 0 or used_after <= max(before.map_floor_bytes, before.disk_bytes):
            return None
        return (
            f"the store's data grew from {human_bytes(before.disk_bytes)} to {human_bytes(used_after)}: "
            "a server that was already running on this data dir may fail with MDB_MAP_RESIZED "
            "until it is restarted"
        )


class _DryRun:
    """What ``_Writer`` would do, judged from what the store holds now
    (``None``: no store yet); stores nothing. Remembers the names it accepted
    so a name repeated in the file is a conflict, as it would be for real."""

    def __init__(self, store: AdminStore | None) -> None:
        self._store = store
        self._accepted: set[str] = set()

    async def put_batch(self, batch: list[Restored]) -> list[bool]:
        return [await self._accept(paste.key) for paste in batch]

    async def growth_warning(self) -> str | None:
        return None

    async def _accept(self, key: str) -> bool:
        if key in self._accepted:
            return False
        if self._store is not None:
            try:
                if await self._store.get(key) is not None:
                    return False  # a live paste holds it
            except (ValueError, struct.error, CorruptPaste):
                return False  # unreadable: never overwritten
        self._accepted.add(key)
        return True
