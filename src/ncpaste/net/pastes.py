"""Creating and reading pastes: the part every port shares, and the site.

This is where bytes from a socket become a stored paste (compressed off the
event loop, committed durably) and where a stored paste becomes bytes again.
Handlers get these pieces, and the guard, metrics, hot cache and live
registry, each by name from ``server`` (no object carries all of them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ncpaste.config import Config, Current
from ncpaste.core import keys, units
from ncpaste.core.addresses import in_networks, parse_networks
from ncpaste.core.errors import CorruptPaste
from ncpaste.core.http import usage_text
from ncpaste.core.options import PasteOptions, PastePlan, resolve
from ncpaste.core.pages import FormLimits, render_form
from ncpaste.core.redact import redact
from ncpaste.logs import event
from ncpaste.store import Created, NewLivePaste, NewPaste, PasteStore, StoredPaste, records

log = logging.getLogger(__name__)

# How long the one-time notice after a browser paste waits to be shown: the
# 303 that names it is followed at once; a notice never shown (a browser
# closed in between) expires with the sweep like any paste.
NOTICE_TTL_S = 600
# A notice is a key and a token on two lines; anything longer is not one.
MAX_NOTICE_BYTES = 256

# Below this, redacting on the event loop is cheaper than a hop to a worker
# thread (the patterns scan ~64 KiB in well under a millisecond).
INLINE_REDACT_BYTES = 64 * 1024


class Pastes:
    """Making and reading pastes, for all three ports: options become a plan
    under the current limits, bytes are redacted if asked, a delete token is
    minted (here only) and the paste is stored; stored pastes open back into
    verified bytes."""

    def __init__(self, store: PasteStore, clock_ms: Callable[[], int], current: Current) -> None:
        self.store = store
        self.clock_ms = clock_ms
        self._current = current

    def plan(self, options: PasteOptions) -> PastePlan:
        config = self._current.config
        return resolve(
            options,
            default_expire_s=config.default_expire_s,
            max_expire_s=config.max_expire_s,
            redact_default=config.redact_default,
        )

    async def create(
        self, body: bytearray | bytes, plan: PastePlan, *, via: str, client: str
    ) -> tuple[Created, str, int]:
        """Redact if asked, store durably; return (created, delete token,
        secrets masked)."""
        redacted = 0
        if plan.redact:
            if len(body) <= INLINE_REDACT_BYTES:
                body, redacted = redact(body)
            else:
                body, redacted = await trio.to_thread.run_sync(redact, body)
        token, token_hash = _mint_token()
        created = await self.store.create(
            NewPaste(body, token_hash, plan.expire_s, burn=plan.burn, alias=plan.alias)
        )
        event(
            log,
            "paste.created",
            key=created.key,
            port=via.split("-")[0],
            ended=via,
            client=client,
            size=len(body),
            stored=created.stored_bytes,
            expire_s=plan.expire_s,
            burn=int(plan.burn),
            redacted=redacted,
        )
        return created, token, redacted

    async def create_live(self, plan: PastePlan) -> tuple[Created, str]:
        """Open a live paste durably; return (created, delete token)."""
        token, token_hash = _mint_token()
        # Held open a little past --live-max-open, so the writer's own
        # deadline always ends it first.
        hold_s = int(self._current.config.live_max_open_s) + 60
        created = await self.store.create_live(NewLivePaste(token_hash, plan.expire_s, hold_s, alias=plan.alias))
        return created, token

    async def leave_notice(self, key: str, token: str) -> str:
        """Keep ``key``'s delete token for the page the browser form's 303
        leads to, and return the notice's name. The notice is a short-lived
        burn-after-read record in the store, so the page can be served by
        any worker or node; it is shown once, and only on ``key``'s page."""
        _, unused_hash = _mint_token()  # nobody deletes a notice: it burns or expires
        created = await self.store.create(
            NewPaste(f"{key}\n{token}".encode(), unused_hash, NOTICE_TTL_S, burn=True)
        )
        return created.key

    async def take_notice(self, name: str, paste: StoredPaste) -> str | None:
        """The delete token the notice ``name`` keeps for ``paste``, taking
        the notice (of two readers, one gets it); None if it is gone or is
        not a notice of ``paste`` (only a burn-after-read record whose token
        is ``paste``'s own is taken, so no address can delete another paste)."""
        notice = await self.store.get(name)
        if notice is None or not notice.meta.burn or notice.meta.size > MAX_NOTICE_BYTES:
            return None
        noted_key, _, token = (await self.body(notice)).decode("utf-8", "replace").partition("\n")
        if noted_key != paste.key or not keys.token_matches(token, paste.meta.token_hash):
            return None
        return token if await self.store.take(name) is not None else None

    async def body(self, paste: StoredPaste) -> bytes:
        """The verified, decompressed bytes of a stored paste."""
        try:
            return await records.open_stored(paste)
        except CorruptPaste:
            event(log, "paste.corrupt", logging.ERROR, key=paste.key, hint="run ncpaste check")
            raise


class Site:
    """What the server says about itself: the URL of a paste, the usage
    page (naming the real URL and netcat port, built once), and who may
    read /metrics."""

    def __init__(self, config: Config, base_url: str, *, tcp_port: int, live_port: int | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._metrics_allow = parse_networks(config.metrics_allow)
        self.usage = usage_text(
            self.base_url,
            _host_of(self.base_url),
            tcp_port,
            max_size=units.format_size(config.max_paste_bytes),
            default_expire=units.format_duration(config.default_expire_s),
            max_expire=units.format_duration(config.max_expire_s),
            live_port=live_port,
        )

        #: The paste form at ``/`` for browsers, with the usage below it.
        self.form = render_form(
            FormLimits(config.max_paste_bytes, config.default_expire_s, config.max_expire_s), self.usage
        )

    def url(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def metrics_allowed(self, ip: str) -> bool:
        """/metrics is open unless --metrics-allow names who may scrape it."""
        return not self._metrics_allow or in_networks(ip, self._metrics_allow)


def _mint_token() -> tuple[str, bytes]:
    """The one place delete tokens are made: the token for the client, the
    hash for the store (which never sees the token itself)."""
    token = keys.new_token()
    return token, keys.token_hash(token)


def _host_of(base_url: str) -> str:
    """The host part of the base URL, for the usage page's nc examples."""
    rest = base_url.split("://", 1)[-1]
    host = rest.split("/", 1)[0]
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if ":" in host else host
