"""The ceiling for a netcat paste on ncpaste's stack: trio and nothing else.

    python bench/ceiling_nc.py PORT

Listens on 127.0.0.1:PORT in one process; each connection is read until the
client half-closes, answered with one URL line and closed, as ncpaste's
netcat port does. No store, fsync, keys, options, limits, timeouts or
logging: what is left is what any trio server pays per paste connection
(accept, a task, the receives, one send, the close), so ncpaste's CPU per
paste minus this one's is the cost of ncpaste's own work. The bytes are
dropped: the bench does not read this server's pastes back.

The accept loop is ceiling_h11.py's (ceiling_accept.py): every connection
the kernel has queued per wake-up of the listener, not one per turn of the
loop.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Iterator

import trio
from ceiling_accept import HOST, accept_forever, exit_with, listening_socket

# One receive_some, as ncpaste's netcat port reads (net/streams.RECEIVE_BYTES).
MAX_RECV_BYTES = 64 * 1024


async def serve_connection(stream: trio.SocketStream, *, prefix: bytes, numbers: Iterator[int]) -> None:
    """Read one paste to the client's FIN and answer its URL line."""
    try:
        while await stream.receive_some(MAX_RECV_BYTES):
            pass
        await stream.send_all(b"%s%012d\n" % (prefix, next(numbers)))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def serve(port: int) -> None:
    """Accept on 127.0.0.1:``port`` and answer every connection, until cancelled."""
    handle = functools.partial(serve_connection, prefix=f"http://{HOST}:{port}/".encode(), numbers=itertools.count(1))
    with listening_socket(port) as sock:
        async with trio.open_nursery() as connections:
            await accept_forever(sock, connections, handle)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: ceiling_nc.py PORT", file=sys.stderr)
        return 2
    trio.run(serve, int(argv[0]))
    return 0


if __name__ == "__main__":
    exit_with(main)
