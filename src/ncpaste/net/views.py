"""The reading side for people: the HTML view and log-friendly raw reads.

``core.view`` renders, ``core.slicing`` selects; this module feeds them from
the store or a live paste and streams the result, rendering off the event
loop in blocks so a 10 MiB log never stalls other connections.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ncpaste.core.ansi import AnsiState
from ncpaste.core.http import http_date
from ncpaste.core.slicing import LogQuery, apply
from ncpaste.core.view import Notice, PageInfo, render_head, render_lines, render_tail
from ncpaste.store import StoredPaste

# Lines rendered per worker-thread call: big enough to amortise the hop,
# small enough that the first screen of a huge log arrives at once.
RENDER_BLOCK_LINES = 2000
# Above this, selecting lines (tail, grep, ...) runs in a worker thread.
INLINE_SELECT_BYTES = 256 * 1024

Send = Callable[[bytes], Awaitable[None]]


def page_info(
    paste: StoredPaste, base_url: str, size: int, lines: int | None, notice: Notice | None = None
) -> PageInfo:
    url = f"{base_url}/{paste.key}"
    meta = paste.meta
    return PageInfo(
        key=paste.key,
        size=size,
        lines=lines,
        expires_http=http_date(meta.expires_ms).decode() if not meta.is_open else "after the writer ends",
        state=meta.state,
        truncated=meta.truncated,
        raw_url=f"{url}?raw",
        download_url=f"{url}?raw",
        notice=notice,
    )


async def selected(body: bytes, query: LogQuery) -> bytes:
    if len(body) <= INLINE_SELECT_BYTES:
        return apply(body, query)
    return await trio.to_thread.run_sync(apply, body, query)


class HtmlLines:
    """Turns a stream of bytes into rendered line blocks: holds back a
    partial last line until its newline (or the end) arrives."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.state = AnsiState()
        self.number = 1
        self.partial = b""

    async def feed(self, data: bytes) -> None:
        data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return
        self.partial = data[cut + 1 :]
        await self._render(data[:cut].split(b"\n"))

    async def finish(self) -> None:
        if self.partial:
            await self._render([self.partial])
            self.partial = b""

    async def _render(self, lines: list[bytes]) -> None:
        for start in range(0, len(lines), RENDER_BLOCK_LINES):
            block = [line.decode("utf-8", "replace") for line in lines[start : start + RENDER_BLOCK_LINES]]
            html = await trio.to_thread.run_sync(render_lines, block, self.number, self.state)
            self.number += len(block)
            await self.send(html.encode())


async def stream_html(
    send: Send, paste: StoredPaste, body: bytes, base_url: str, notice: Notice | None = None
) -> None:
    """The HTML view of a finished paste (with the one-time ``notice`` after the form)."""
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    info = page_info(paste, base_url, len(body), lines, notice)
    await send(render_head(info).encode())
    renderer = HtmlLines(send)
    await renderer.feed(body)
    await renderer.finish()
    await send(render_tail(info).encode())

