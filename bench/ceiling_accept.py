"""The listening socket and accept loop both ceilings share
(ceiling_h11.py for reads, ceiling_nc.py for netcat pastes).

Each wake-up of the listener accepts every connection already waiting:
trio's ``serve_listeners`` accepts one per turn of the event loop, so under
load the last of 64 connections waits 64 turns for its first answer, which
would put the start of a run into a ceiling's figures rather than the cost
of a connection. ncpaste's own accept loop does the same (net/server.py).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

HOST = "127.0.0.1"  # loopback only, like every server of the bench
# Pending connections: more than the bench's clients connecting at once.
BACKLOG = 4096


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


async def accept_forever(sock: socket.socket, connections: trio.Nursery,
                         handle: Callable[[trio.SocketStream], Awaitable[None]]) -> NoReturn:
    """Start ``handle(stream)`` in ``connections`` for every connection to
    ``sock``, until cancelled."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        while True:  # everything the kernel has queued, without a turn of the loop each
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue  # reset before we took it; the next one is fine
            conn.setblocking(False)
            connections.start_soon(handle, trio.SocketStream(trio.socket.from_stdlib_socket(conn)))


def exit_with(main: Callable[[list[str]], int]) -> NoReturn:
    """Run a ceiling's ``main`` on the command line's arguments and exit
    with its code; Ctrl-C (how the bench's operator stops one) exits 130."""
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
