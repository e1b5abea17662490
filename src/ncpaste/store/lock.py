"""One server per data dir: an advisory lock the OS drops when the process dies.

A second ``ncpaste serve`` on the same ``--data-dir`` (a typo, a second unit,
a cron job) must not touch the store: its start-up recovery would close the
running server's live pastes as if a crash had left them open. The server
takes ``flock(LOCK_EX | LOCK_NB)`` on a file in the data dir before anything
else; the kernel releases it however the process ends, so a crash never
leaves it stale. The lock is held by the process that owns the store for
all its workers (the supervisor with ``--workers N``); admin commands do not
take it: they are readers, or take LMDB's write lock per transaction.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "server.lock"
# The pid written into the lock file is a few digits; read no more than this.
MAX_LOCK_FILE_BYTES = 64


class DataDirInUse(Exception):
    """Another server holds the data dir; the message is the user's one line."""


class DataDirLock:
    """Held from ``acquire`` until ``release`` (or the process's end)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Create the data dir if needed and lock it. Raises DataDirInUse,
        or OSError when the dir cannot be created or written."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        # O_CLOEXEC: worker processes do not inherit it; they run under the
        # supervisor that holds it, and die with it.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            # The absolute path: "./data" says little in a unit's journal.
            raise DataDirInUse(f"another ncpaste server is using {os.path.abspath(data_dir)}{who}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor drops the lock; the file stays (removing
            # it would race with a server that opened it meanwhile).
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The pid the holder wrote, if it is one."""
    try:
        text = os.pread(fd, MAX_LOCK_FILE_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
