"""Progress reports for long admin commands (export, import, sweep, stats).

On a terminal, one line redrawn in place with ``\\r``: a bar, the percentage,
the count and the rate. Anywhere else (a log file, a pipe, systemd's journal)
``\\r`` redraws would pile up as garbage, so it writes a plain line every few
seconds and one at the end instead. Progress goes to stderr, never stdout:
stdout may be carrying the export itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from ncpaste.commands.common import is_tty

# A terminal redraw at most this often: ten frames a second looks live, and a
# loop over millions of small records must not spend its time drawing.
TTY_REDRAW_S = 0.1
# A log line at most this often when stderr is not a terminal: a few lines a
# minute for a long job, not a flood in the journal.
LOG_EVERY_S = 2.0
# Characters in the terminal bar: fits an 80-column line with the numbers.
BAR_WIDTH = 24


class Writable(Protocol):
    """Where progress goes: a terminal, a log, or nowhere (``--quiet``)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes an operator reads at a glance."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{int(count)} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Reports how far a long operation has come.

    ``total`` is the expected count (None when unknown: no percentage or bar);
    ``what`` names the work (``"exporting pastes"``); ``unit="B"`` shows counts
    as sizes (``12.3 MiB``). ``clock`` is injectable so tests need not sleep.
    Use as a context manager, or call ``done()`` when finished.
    """

    def __init__(
        self,
        total: int | None,
        what: str,
        stream: Writable | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "",
    ) -> None:
        self.total = total
        self.what = what
        self.count = 0
        self.unit = unit
        # Resolved now, not at import: tests and callers swap sys.stderr.
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._tty = is_tty(self._stream)
        self._started = clock()
        self._last_shown: float | None = None
        self._last_logged = self._started
        self._width = 0
        self._finished = False

    # -- the public surface ------------------------------------------------------

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = self._clock()
        if self._tty:
            if self._last_shown is None or now - self._last_shown >= TTY_REDRAW_S:
                self._last_shown = now
                self._draw(now)
        elif now - self._last_logged >= LOG_EVERY_S:
            self._last_logged = now
            self._write(f"ncpaste: {self.what}: {self._numbers(now)}\n")

    def done(self) -> None:
        """Show the final state once (later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        now = self._clock()
        if self._tty:
            self._draw(now)
            self._write("\n")
        else:
            elapsed = now - self._started
            self._write(
                f"ncpaste: {self.what}: done, {self._amount(self.count)} "
                f"in {elapsed:.1f} s ({self._rate(now)})\n"
            )

    def note(self, line: str) -> None:
        """Print a message line among the progress. On a terminal it takes the
        bar's place; the bar comes back on the next ``advance``."""
        if self._tty and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_shown = None
        self._write(line + "\n")

    def stop(self) -> None:
        """End after a failure: finish the terminal line so an error message
        starts on a fresh one; say where it stopped."""
        if self._finished:
            return
        self._finished = True
        if self._tty:
            self._draw(self._clock())
            self._write("\n")
        else:
            self._write(f"ncpaste: {self.what}: stopped after {self._amount(self.count)}\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.done()
        else:
            self.stop()

    # -- rendering -------------------------------------------------------------------

    def _amount(self, count: float) -> str:
        return human_bytes(count) if self.unit == "B" else str(round(count))

    def _rate(self, now: float) -> str:
        elapsed = now - self._started
        if elapsed <= 0:
            return "-/s"
        return f"{self._amount(self.count / elapsed)}/s"

    def _fraction(self) -> float | None:
        if self.total is None:
            return None
        if self.total <= 0:
            return 1.0
        return min(self.count / self.total, 1.0)

    def _numbers(self, now: float) -> str:
        fraction = self._fraction()
        if fraction is None or self.total is None:
            return f"{self._amount(self.count)}, {self._rate(now)}"
        return (
            f"{self._amount(self.count)}/{self._amount(self.total)} "
            f"({int(fraction * 100)}%), {self._rate(now)}"
        )

    def _draw(self, now: float) -> None:
        fraction = self._fraction()
        if fraction is None or self.total is None:
            line = f"{self.what}: {self._amount(self.count)} {self._rate(now)}"
        else:
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            line = (
                f"{self.what} [{bar}] {int(fraction * 100):3d}% "
                f"{self._amount(self.count)}/{self._amount(self.total)} {self._rate(now)}"
            )
        # Pad over the remains of a longer previous frame.
        padding = " " * max(self._width - len(line), 0)
        self._width = len(line)
        self._write("\r" + line + padding)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # progress is a courtesy: a closed stderr must not fail the job
