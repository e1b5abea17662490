"""Building a paste from a byte stream, chunk by chunk, without I/O.

The same builder serves the netcat port (with an optional ``#!ncpaste`` line)
and HTTP bodies. It rejects a paste the moment it goes wrong (too large, a NUL
byte, invalid UTF-8), so the shell can answer early and stop buffering.
"""

from __future__ import annotations

import codecs

from ncpaste.core import units
from ncpaste.core.errors import BadOption, EmptyPaste, NotText, TooLarge
from ncpaste.core.options import MAX_PREAMBLE_BYTES, PREAMBLE_MAGIC, PasteOptions, parse_preamble


class PasteBuilder:
    """Accumulates and validates one paste body.

    Memory is what was received so far (a growing bytearray), never a buffer of
    the maximum size up front.
    """

    def __init__(self, max_bytes: int, *, accept_preamble: bool = False) -> None:
        self.max_bytes = max_bytes
        self.options = PasteOptions()
        self.body = bytearray()
        self._in_preamble = accept_preamble
        self._preamble = bytearray()
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        # What drain() has handed out already (for a live paste the body is
        # not kept in memory); offsets and line numbers count it.
        self._drained_bytes = 0
        self._drained_lines = 0
        self._received = 0

    @property
    def size(self) -> int:
        """Body bytes received so far (kept, drained, or held back as the
        start of a character still to be completed)."""
        return self._received

    @property
    def in_preamble(self) -> bool:
        return self._in_preamble

    def drain(self) -> bytes:
        """Take the body validated so far out of the builder (live pastes
        stream it to the store instead of holding it all)."""
        taken = bytes(self.body)
        self._drained_bytes += len(taken)
        self._drained_lines += taken.count(b"\n")
        self.body.clear()
        return taken

    def end_preamble(self) -> None:
        """No more options line can come: what was held back as a possible
        options line is parsed as one, or becomes body."""
        if self._in_preamble:
            pending = bytes(self._preamble)
            self._in_preamble = False
            self._preamble.clear()
            if pending.startswith(PREAMBLE_MAGIC):
                self.options = parse_preamble(pending.rstrip(b"\r"))
            else:
                self._feed_body(pending)

    def check_end(self) -> None:
        """The sender is done: a character cut off at the end is not text."""
        held = self._decoder.getstate()[0]
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            # exc.object is the held-back bytes, the last len(held) received.
            raise self._not_text(
                "invalid UTF-8 (truncated character)", self.size - len(held) + exc.start
            ) from None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add received bytes. Raises TooLarge, NotText or BadOption."""
        if not chunk:
            return
        if isinstance(chunk, memoryview):
            chunk = chunk.tobytes()
        if self._in_preamble:
            chunk = self._feed_preamble(chunk)
            if not chunk:
                return
        self._feed_body(chunk)

    def finish(self) -> tuple[PasteOptions, bytearray]:
        """The sender is done: return the options and the validated body."""
        self.end_preamble()
        self.check_end()
        if not self.size:
            raise EmptyPaste("empty paste: nothing was received")
        return self.options, self.body

    def _feed_preamble(self, chunk: bytes | bytearray) -> bytes:
        """Buffer the first line while it may still be a preamble; return body bytes."""
        self._preamble += chunk
        head = bytes(self._preamble[: len(PREAMBLE_MAGIC)])
        if not PREAMBLE_MAGIC.startswith(head):
            # Not a preamble after all: everything buffered is body.
            return self._leave_preamble(None)
        newline = self._preamble.find(b"\n")
        if newline < 0:
            if len(self._preamble) > MAX_PREAMBLE_BYTES:
                raise BadOption(
                    f"options line longer than {MAX_PREAMBLE_BYTES} bytes: "
                    "end it with a newline, e.g. '#!ncpaste expire=1h'"
                )
            return b""
        if newline > MAX_PREAMBLE_BYTES:
            raise BadOption(f"options line longer than {MAX_PREAMBLE_BYTES} bytes")
        line = bytes(self._preamble[:newline]).rstrip(b"\r")
        if not line.startswith(PREAMBLE_MAGIC):
            return self._leave_preamble(None)
        self.options = parse_preamble(line)
        return self._leave_preamble(newline + 1)

    def _leave_preamble(self, body_start: int | None) -> bytes:
        rest = bytes(self._preamble[body_start or 0 :])
        self._in_preamble = False
        self._preamble = bytearray()
        return rest

    def _feed_body(self, chunk: bytes | bytearray) -> None:
        """Validate and keep ``chunk``. The body only ever holds whole UTF-8
        characters: the start of one cut by the chunk's end waits in the
        decoder. On a NUL byte or invalid UTF-8 the text before it is kept
        (a live paste commits it) and nothing from the bad byte on."""
        start = self.size
        if start + len(chunk) > self.max_bytes:
            raise TooLarge(f"paste too large: the limit is {units.format_size(self.max_bytes)}")
        held_before = self._decoder.getstate()[0]
        nul = chunk.find(b"\0")
        text = chunk if nul < 0 else chunk[:nul]
        self._received += len(chunk)
        # What the decoder sees: the bytes it held back from the previous
        # chunk (at most 3, not in the body yet), then this chunk's text.
        seen = held_before + text if held_before else text
        base = start - len(held_before)  # stream offset of seen[0]
        try:
            self._decoder.decode(text)
        except UnicodeDecodeError as exc:
            self.body += seen[: exc.start]  # whole characters, all of them good
            raise self._not_text("invalid UTF-8", base + exc.start) from None
        held_after = self._decoder.getstate()[0]
        self.body += seen[: len(seen) - len(held_after)] if held_after else seen
        if nul >= 0:
            if held_after:  # a character cut off by the NUL is not text from its start
                raise self._not_text("invalid UTF-8", base + len(seen) - len(held_after))
            raise self._not_text("NUL byte", start + nul)

    def _not_text(self, what: str, offset: int) -> NotText:
        within = max(offset - self._drained_bytes, 0)
        line = self._drained_lines + self.body.count(b"\n", 0, within) + 1
        return NotText(
            f"not text: {what} at byte {offset} (line {line}); ncpaste stores UTF-8 text only"
        )
