"""The response head that bench/ceiling_h11.py and bench/hypercorn_app.py send
with their constant body: the header set ncpaste sends with a raw paste (as
`curl -sD- URL` shows it), so every server of a GET cell writes a head of about
the same size (about 490 bytes with the status line) before the same bytes.

Standard library only: hypercorn_app.py imports this inside hypercorn's own
venv, where ncpaste is not installed.
"""

from __future__ import annotations

import email.utils
import hashlib
import time

# What ncpaste says for a paste kept for the default 7 days; the figures only
# need to be of the same length as ncpaste's, not to count down.
DEFAULT_EXPIRE_S = 7 * 86400


def paste_headers(body: bytes, now: float | None = None) -> list[tuple[str, str]]:
    """The headers of ncpaste's answer to a plain GET of a paste with ``body``."""
    created = time.time() if now is None else now
    return [
        ("content-type", "text/plain; charset=utf-8"),
        ("etag", f'"{hashlib.md5(body).hexdigest()}"'),
        ("last-modified", email.utils.formatdate(created, usegmt=True)),
        ("cache-control", f"public, max-age={DEFAULT_EXPIRE_S - 1}, s-maxage=5"),
        ("accept-ranges", "bytes"),
        ("x-expires", email.utils.formatdate(created + DEFAULT_EXPIRE_S, usegmt=True)),
        ("x-paste-state", "complete"),
        ("vary", "accept, accept-encoding"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
        ("x-robots-tag", "noindex, nofollow"),
        ("referrer-policy", "no-referrer"),
        ("content-length", str(len(body))),
    ]
