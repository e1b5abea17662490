"""The ceiling for a read on ncpaste's stack: trio + h11 and nothing else.

    python bench/ceiling_h11.py PORT BODY_FILE

Listens on 127.0.0.1:PORT in one process and answers every request with 200,
the bytes of BODY_FILE and the headers ncpaste sends with a paste
(constant_response.py). No routing, store, timeouts, limits or logging: what
is left is what any server on trio + h11 pays per request (accept, receive,
h11 parsing the request and writing the response, one send), so ncpaste ÷
this is the share of a read that ncpaste's own work costs. The shape is
h11's examples/trio-server.py, without its echo, timeouts and error pages:
the bench's clients send only well-formed GETs.

The response goes out in one ``send_all`` (head, body and end together), as
ncpaste sends a paste. Each wake-up of the listener accepts every connection
already waiting (ceiling_accept.py says why).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import h11
import trio
from ceiling_accept import accept_forever, exit_with, listening_socket
from constant_response import paste_headers

# One receive_some: a request head from wrk or curl is a few hundred bytes;
# 64 KiB takes a whole pipelined burst of them at once.
MAX_RECV_BYTES = 64 * 1024


class ConstantResponse:
    """The one answer this server gives, built once: h11 validates and
    serialises the head per request (that cost belongs in the ceiling), the
    header list and body are shared."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers = [(name.encode(), value.encode()) for name, value in paste_headers(body)]

    def bytes_for(self, conn: h11.Connection) -> bytes:
        return (conn.send(h11.Response(status_code=200, headers=self.headers, reason=b"OK"))
                + conn.send(h11.Data(data=self.body))
                + conn.send(h11.EndOfMessage()))


async def serve_connection(stream: trio.SocketStream, answer: ConstantResponse) -> None:
    """Answer each request on one keep-alive connection until the peer goes."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(MAX_RECV_BYTES)
                except (trio.BrokenResourceError, ConnectionError):
                    data = b""  # a reset peer is a closed one
                conn.receive_data(data)
            elif isinstance(event, h11.EndOfMessage):
                await stream.send_all(answer.bytes_for(conn))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            # h11.Request and h11.Data: the answer waits for the request's end.
    except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await stream.aclose()


async def serve(port: int, body: bytes, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept on 127.0.0.1:``port`` and answer every connection, until cancelled."""
    answer = ConstantResponse(body)
    with listening_socket(port) as sock:
        task_status.started()
        async with trio.open_nursery() as connections:
            await accept_forever(sock, connections, functools.partial(serve_connection, answer=answer))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: ceiling_h11.py PORT BODY_FILE", file=sys.stderr)
        return 2
    trio.run(serve, int(argv[0]), Path(argv[1]).read_bytes())
    return 0


if __name__ == "__main__":
    exit_with(main)
