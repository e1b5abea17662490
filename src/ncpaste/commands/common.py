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


def data_dir_of(args: argparse.Namespace) -> Path:
    """--data-dir, else $NCPASTE_DATA_DIR, else ./data: the same for every command."""
    given = getattr(args, "data_dir", None)
    if given is not None:
        return Path(given)
    return Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else DEFAULT_DATA_DIR


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
