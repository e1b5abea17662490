"""The one place an LMDB environment is opened, and the data dir's layout.

Every LMDB file ncpaste uses goes through ``open_environment``: the embedded
store's data dir (``LmdbStore``, whether the server, an admin command, a
check or a backup opens it) and an S3 node's small key pool. The options
that make a data dir safe to share between a server and the admin commands
(reader slots, the map floor, read-only opens that still register their
readers) are written here once.
"""

from __future__ import annotations

import struct
from pathlib import Path

import lmdb

# The data dir's named databases.
PASTES_DB = b"pastes"
EXPIRY_DB = b"expiry"
POOL_DB = b"pool"
LIVE_DB = b"live"
#: What a data dir must hold; ``live`` appears with the first live paste.
REQUIRED_DBS = (PASTES_DB, EXPIRY_DB, POOL_DB)
# Named databases: the four above, with room to add some without a migration.
MAX_DBS = 8
DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"
# Expiry index keys: 8-byte big-endian expiry ms, then the paste key.
EXPIRY_KEY = struct.Struct(">Q")
# Start small (the file is sparse anyway) and double when full. A reader's
# map must cover the file when its transaction starts: twice the current
# size leaves room for a server growing it meanwhile. Address space, not memory.
INITIAL_MAP_BYTES = 1 << 30
# Address space is plentiful on 64-bit; this only stops a runaway loop.
MAX_MAP_BYTES = 1 << 44
# Reader slots: the event loop plus trio's worker threads plus admin commands.
# Whoever opens the lock file first sizes the table, so every opener asks
# for all of them.
MAX_READERS = 512


def _initial_map_bytes() -> int:
    return INITIAL_MAP_BYTES  # looked up at each open: tests shrink it


class NotADataDir(ValueError):
    """The directory holds no ncpaste store (a read must never create one)."""


class NoDataFile(NotADataDir):
    """Nothing is there at all (no data file): not a damaged store, an absent one."""


def open_environment(
    path: Path,
    *,
    readonly: bool = False,
    create: bool = True,
    lock: bool = True,
    durable: bool = True,
    map_bytes: int | None = None,
) -> lmdb.Environment:
    """Open the environment in directory ``path``.

    ``create=False`` (and every read-only open) refuses a directory without
    an ncpaste store, naming what is missing, and creates nothing.
    ``readonly`` maps the file read-only and never takes the writer lock;
    ``lock`` stays on so our read transactions are in the shared reader
    table, which stops a live writer from recycling the pages we read (only
    a copy nobody else has open may go without). ``durable=False`` skips
    fsync (a node's key pool: losing its last writes is harmless).
    """
    path = Path(path)
    data_file = path / DATA_FILE
    must_exist = readonly or not create
    if must_exist and not data_file.is_file():
        raise NoDataFile(f"not an ncpaste data dir: {path} (no {DATA_FILE})")
    existing = data_file.stat().st_size if data_file.exists() else 0
    try:
        env = lmdb.open(
            str(path),
            map_size=map_bytes or max(_initial_map_bytes(), 2 * existing),
            max_dbs=MAX_DBS,
            max_readers=MAX_READERS,
            subdir=True,
            readonly=readonly,
            lock=lock,
            sync=durable,
            metasync=durable,
            readahead=False,  # random access to pastes: readahead only pollutes the page cache
            meminit=False,
        )
    except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as exc:
        raise NotADataDir(f"not an ncpaste data dir: {path} ({exc})") from None
    if must_exist:
        try:
            for name in REQUIRED_DBS:
                env.open_db(name, create=False)
        except lmdb.NotFoundError:
            env.close()
            raise NotADataDir(f"not an ncpaste data dir: {path} (no {name.decode()!r} database)") from None
        except BaseException:
            env.close()
            raise
    return env
