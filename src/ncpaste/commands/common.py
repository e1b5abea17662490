"""What every command shares: exit codes, the data-dir default, progress lines."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

DATA_DIR_ENV = "NCPASTE_DATA_DIR"
DEFAULT_DATA_DIR = Path("./data")
DATA_DIR_HELP = f"the server's data dir (default ${DATA_DIR_ENV}, else ./data) [{DATA_DIR_ENV}]"
STORE_ENV = "NCPASTE_STORE"
STORE_HELP = (
    f"the servers' shared S3 storage instead of the LMDB store in --data-dir (default ${STORE_ENV}); "
    f"credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [{STORE_ENV}]"
)


def data_dir_of(args: argparse.Namespace) -> Path:
    """--data-dir, else $NCPASTE_DATA_DIR, else ./data: the same for every command."""
    given = getattr(args, "data_dir", None)
    if given is not None:
        return Path(given)
    return Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else DEFAULT_DATA_DIR


def parse_store(text: str) -> str | None:
    """--store's value: None (or "lmdb") for the embedded store, else the S3 URL."""
    return None if text.strip().lower() in ("", "lmdb") else text.strip()


def store_of(args: argparse.Namespace) -> str | None:
    """--store, else $NCPASTE_STORE, else None (the embedded store): as ``serve`` reads it."""
    given = getattr(args, "store", None)
    if given is not None:
        return parse_store(given)
    return parse_store(os.environ.get(STORE_ENV, ""))


def is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]  # any stream-like object
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def status_line(message: str) -> None:
    """One progress message on stderr: redrawn in place on a terminal, one
    line each in a log."""
    if is_tty(sys.stderr):
        sys.stderr.write("\r\x1b[K" + message)
        sys.stderr.flush()
    else:
        print(message, file=sys.stderr, flush=True)


def end_status_line() -> None:
    if is_tty(sys.stderr):
        sys.stderr.write("\n")
