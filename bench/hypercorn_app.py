"""A minimal ASGI app for hypercorn's trio worker: every request gets 200 and
the same bytes, with the headers ncpaste sends with a paste.

    bench/.venv-hypercorn/bin/hypercorn -k trio ... "bench/hypercorn_app.py:make_app('/path/to/body')"

hypercorn evaluates the part after the colon in this module, so the body file
is an argument of ``make_app`` rather than module state. It runs in hypercorn's
own venv: standard library and constant_response.py only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from constant_response import paste_headers

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(body_path: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    body = Path(body_path).read_bytes()
    headers = [(name.encode(), value.encode()) for name, value in paste_headers(body)]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Nothing to set up or tear down; answering keeps hypercorn from
            # logging that the app has no lifespan support.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
