"""Small helpers every connection handler needs: bounded draining and closing,
and the one way a netcat-style port refuses (an error line, then a bounded drain)."""

from __future__ import annotations

import trio

from ncpaste.config import Config
from ncpaste.core.errors import PasteError

# Read size per receive: large enough to keep syscalls few for MiB pastes,
# small enough that thousands of idle connections cost nothing up front.
RECEIVE_BYTES = 64 * 1024
# Read size once an upload has passed its first RECEIVE_BYTES: a big paste is
# read in up to 1 MiB per receive (what the kernel holds by then), so a MiB
# costs a few receives and turns of the event loop instead of sixteen or more
# (nc ingest of 1 MiB pastes x4: about 10 % less server CPU per paste and
# 15 % more pastes/s, five alternating runs; 256 KiB gave half of that). The
# buffer is transient: one receive at a time, trimmed to what arrived.
LARGE_RECEIVE_BYTES = 1024 * 1024


def receive_size(received: int) -> int:
    """How much to ask for in the next receive of an upload that has
    ``received`` bytes so far."""
    return LARGE_RECEIVE_BYTES if received >= RECEIVE_BYTES else RECEIVE_BYTES


async def drain(stream: trio.abc.ReceiveStream, *, timeout_s: float, max_bytes: int) -> None:
    """Read and discard what the peer still sends, for a bounded time and size.

    Closing a socket with unread input makes the kernel answer with a reset,
    which can destroy our error line before the client reads it. Draining
    first lets `nc` print the error.
    """
    received = 0
    with trio.move_on_after(timeout_s):
        while received < max_bytes:
            try:
                data = await stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            received += len(data)


async def send_quietly(stream: trio.abc.SendStream, data: bytes, *, timeout_s: float) -> bool:
    """Send, tolerating a vanished or stuck peer. True if it all went out."""
    with trio.move_on_after(timeout_s):
        try:
            await stream.send_all(data)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
    return False


# Time allowed for closing a connection: a plain socket closes at once; the
# bound is for a stream whose aclose has something to wait for.
CLOSE_TIMEOUT_S = 1.0


async def close_quietly(stream: trio.abc.AsyncResource) -> None:
    # Shielded from the handler's own cancellation, bounded on its own: one
    # scope does both (each scope costs, once per connection).
    with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT_S):
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


# Time allowed to hand the reply line to a client that stopped reading.
REPLY_TIMEOUT_S = 10.0


def error_line(error: PasteError) -> bytes:
    """The one place a PasteError becomes a netcat answer."""
    message = error.message if error.reason != "internal" else "internal error, try again"
    return f"error: {message}\n".encode()


async def refuse(stream: trio.abc.Stream, line: bytes, config: Config, *, still_sending: bool = True) -> None:
    """Send the error line, then read and discard what the client still
    sends (bounded), so the line is shown instead of a connection reset.
    A client that has sent nothing at all (``still_sending`` False) leaves
    nothing unread to cause a reset: close at once instead of draining."""
    if await send_quietly(stream, line, timeout_s=REPLY_TIMEOUT_S) and still_sending:
        await drain(stream, timeout_s=config.drain_timeout_s, max_bytes=config.drain_max_bytes)
