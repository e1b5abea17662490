"""Who is connecting, and may they? Client identity and abuse controls in the shell.

Identity: the peer address, or — from a ``--trusted-proxy`` only — the source
in its PROXY header or its X-Forwarded-For / Forwarded headers. Everyone else's
PROXY header is refused, so the client address cannot be spoofed.

Controls (``core.limits``): allow/deny lists, connections per client, pastes
per minute and bytes per day per client. The limiter's clock is trio's
monotonic clock; its state is bounded (old clients are forgotten).
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from ncpaste.config import Config, Current
from ncpaste.core.addresses import in_networks, parse_networks
from ncpaste.core.errors import Denied, PasteError, RateLimited
from ncpaste.core.forwarded import client_from_forwarded
from ncpaste.core.limits import AccessList, ClientLimiter, LimitSettings, Refused, client_key
from ncpaste.core.proxy import (
    ProxyHeaderError,
    might_be_proxy_header,
    parse_proxy_header,
)
from ncpaste.net.streams import RECEIVE_BYTES

log = logging.getLogger(__name__)

# Addresses whose ACL verdict and limiter key are remembered between requests.
MAX_PERMITTED_REMEMBERED = 10_000

_REFUSALS = {
    "pastes": "rate limited: too many pastes from your address",
    "bytes": "rate limited: your address pasted too many bytes today",
    "connections": "rate limited: too many connections from your address",
}


def _limit_settings(config: Config) -> LimitSettings:
    return LimitSettings(
        pastes_per_minute=config.pastes_per_minute,
        bytes_per_day=config.bytes_per_day,
        connections_per_client=config.connections_per_client,
        max_clients_tracked=config.max_clients_tracked,
        enabled=config.limits_enabled,
    )


def _refused(refusal: Refused) -> RateLimited:
    message = _REFUSALS.get(refusal.reason, "rate limited")
    return RateLimited(f"{message}, retry in {refusal.retry_after_s} s", refusal.retry_after_s)


class Guard:
    """Shared by every connection of one server."""

    def __init__(self, current: Current) -> None:
        self._current = current
        config = current.config
        self.limiter = ClientLimiter(_limit_settings(config))
        self.trusted = parse_networks(config.trusted_proxies)
        self.acl = self._load_acl()
        self._permitted: dict[str, str] = {}

    @property
    def config(self) -> Config:
        return self._current.config

    def _load_acl(self) -> AccessList:
        """--allow/--deny plus the --acl-file's lines."""
        allow, deny = list(self.config.allow), list(self.config.deny)
        path = self.config.acl_file
        if path is not None:
            from_file = AccessList.from_file_text(Path(path).read_text())
            allow += list(from_file.allow_entries)
            deny += list(from_file.deny_entries)
        return AccessList(allow, deny)

    def reload(self, config: Config | None = None) -> None:
        """SIGHUP: take new limits, lists and trusted proxies (from ``config``
        if given) and re-read the ACL file. A bad file keeps the old lists;
        limiter state (who used what) is kept. The new snapshot becomes
        everyone's (``Current``) only once it is known to be good."""
        previous = self._current.config
        if config is not None:
            self._current.config = config
        try:
            acl = self._load_acl()
            trusted = parse_networks(self.config.trusted_proxies)
        except (OSError, ValueError) as exc:
            self._current.config = previous
            log.error("access lists not reloaded, keeping the old ones: %s", exc)
            return
        self.acl, self.trusted = acl, trusted
        self._permitted = {}
        self.limiter.replace_settings(_limit_settings(self.config))
        log.info("limits and access lists reloaded")

    def is_trusted(self, ip: str) -> bool:
        return bool(self.trusted) and in_networks(ip, self.trusted)

    def key_for(self, ip: str) -> str:
        """The ACL check plus the limiter's key for this client. Permitted
        addresses are remembered (parsing an address costs more than the rest
        of a cached read); the memory is cleared on reload and when full."""
        key = self._permitted.get(ip)
        if key is not None:
            return key
        if not self.acl.permits(ip):
            raise Denied("your address may not use this service")
        key = client_key(ip, v6_prefix=self.config.ipv6_prefix)
        if len(self._permitted) >= MAX_PERMITTED_REMEMBERED:
            self._permitted.clear()
        self._permitted[ip] = key
        return key

    def connect(self, ip: str) -> str:
        """Check the ACL and count a connection against its client; returns
        the key to pass to ``disconnect``."""
        key = self.key_for(ip)
        try:
            self.limiter.connect(key, trio.current_time())
        except Refused as refusal:
            raise _refused(refusal) from None
        return key

    def disconnect(self, key: str) -> None:
        self.limiter.disconnect(key, trio.current_time())

    def check_paste(self, key: str) -> None:
        try:
            self.limiter.check_paste(key, trio.current_time())
        except Refused as refusal:
            raise _refused(refusal) from None

    def charge(self, key: str, size: int) -> None:
        try:
            self.limiter.charge(key, size, trio.current_time())
        except Refused as refusal:
            raise _refused(refusal) from None

    def forwarded_client(self, peer_ip: str, headers: list[tuple[bytes, bytes]]) -> str:
        return client_from_forwarded(peer_ip, headers, self.is_trusted)

    async def read_proxy_header(
        self, stream: trio.abc.ReceiveStream, peer_ip: str, *, timeout_s: float
    ) -> tuple[str, bytes] | None:
        """Read what may be a PROXY header at the start of a connection.

        Returns the client address and the bytes read past the header (to be
        treated as the start of the payload), or None if nothing arrived in
        time. From a trusted proxy the header is optional; from anyone else a
        PROXY header is refused.
        """
        buffered = b""
        with trio.move_on_after(timeout_s):
            while True:
                looks_like = might_be_proxy_header(buffered) if buffered else None
                if looks_like is False:
                    return peer_ip, buffered
                if looks_like:
                    if not self.is_trusted(peer_ip):
                        raise ProxyHeaderError("PROXY protocol header from an address that is not a trusted proxy")
                    result = parse_proxy_header(buffered)
                    if result is not None:
                        source = result.source[0] if result.source else peer_ip
                        return source, buffered[result.consumed :]
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data:
                    if looks_like:
                        raise ProxyHeaderError("connection ended inside a PROXY header")
                    return peer_ip, buffered
                buffered += data
        if not buffered:
            return None
        if self.is_trusted(peer_ip) and might_be_proxy_header(buffered) is not False:
            raise ProxyHeaderError("incomplete PROXY header")
        return peer_ip, buffered


def peer_ip_of(stream: trio.abc.Stream) -> str:
    """The remote address of a socket stream ('' for in-memory test streams)."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return "127.0.0.1"
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "127.0.0.1"


__all__ = ["Guard", "PasteError", "peer_ip_of"]
