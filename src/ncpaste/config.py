"""Configuration: one frozen dataclass, built once from flags and environment.

Every limit has a unit in its name and a comment saying why its default is
what it is. Tests derive variants with ``dataclasses.replace``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ncpaste.core import keys, limits, units


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"bad address {text!r}: use HOST:PORT, e.g. 0.0.0.0:9999")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host or "0.0.0.0", int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _default_url(http: Address) -> str:
    """What clients are told when --url is not given: this machine's name for a
    wildcard bind (reachable from elsewhere), else the bound host."""
    host = http.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname() or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}"


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("./data")
    #: None: the embedded LMDB store in data_dir. Else shared object storage,
    #: ``s3://BUCKET/PREFIX?endpoint=URL&region=R`` (data_dir then keeps only
    #: this node's key pool); see README "Scaling out".
    store: str | None = None
    # With --store s3://: how long this node may serve a paste from its own
    # cache without asking the engine, so how long a delete made on another
    # node may go unseen here. Expiry is exact either way.
    store_cache_ttl_s: float = 2.0
    #: How long a shared cache in front (the shipped nginx micro-cache, a
    #: CDN, a company proxy) may serve a paste without asking again: the
    #: bound on how long a deleted paste can still be served by one. Short,
    #: because a delete is often a secret pasted by mistake; a few seconds
    #: still turns a burst of reads of one hot paste into one origin request.
    shared_cache_ttl_s: int = 5
    tcp: Address = field(default_factory=lambda: Address("0.0.0.0", 9999))
    http: Address = field(default_factory=lambda: Address("0.0.0.0", 8080))
    #: The live port (URL first, readers follow); None switches it off.
    live: Address | None = field(default_factory=lambda: Address("0.0.0.0", 9998))
    #: Prefix of every URL handed out; None means derived from ``http``.
    url: str | None = None
    # 10 MiB holds the longest CI logs we have seen while keeping one upload's
    # memory modest; operators raise it with --max-size.
    max_paste_bytes: int = 10 * 1024 * 1024
    default_expire_s: int = 7 * 86400
    max_expire_s: int = 90 * 86400
    # Gap since the last byte after which a netcat paste that never
    # half-closes (plain `nc`, bash /dev/tcp) is taken as finished. 3 s keeps
    # plain `nc` inside the 5 s users tolerate (fiche waits 5 s and gets
    # complaints) while riding out the short pauses of a build log; `nc -N`
    # gets its URL at once whatever this is.
    idle_timeout_s: float = 3.0
    # Before the first byte a command may still be starting (`make 2>&1 | nc`).
    first_byte_timeout_s: float = 30.0
    # Whole-upload cap on the netcat port: a trickling client cannot hold a
    # connection forever by sending one byte per idle period.
    max_upload_s: float = 600.0
    # After an error reply, keep reading and discarding this long (and at most
    # drain_max_bytes) so the client sees the error line instead of a reset.
    drain_timeout_s: float = 5.0
    drain_max_bytes: int = 64 * 1024 * 1024
    key_length: int = keys.DEFAULT_KEY_LENGTH
    # HTTP: time to receive a request's headers, the gap allowed between body
    # chunks, and how long an idle keep-alive connection is kept.
    http_header_timeout_s: float = 10.0
    http_body_idle_timeout_s: float = 10.0
    http_keepalive_timeout_s: float = 30.0
    # A response to a client that stops reading: each 256 KiB piece must go
    # out within this long, so a stalled reader cannot pin a connection.
    http_send_timeout_s: float = 30.0
    # Request line + headers: 16 KiB fits any real client (nginx uses 8 KiB
    # buffers) and bounds what a slowloris can make us hold.
    http_max_header_bytes: int = 16 * 1024
    # Concurrent connections over all listeners; beyond this, new connections
    # wait in the kernel backlog instead of costing memory here.
    max_connections: int = 4096
    # On SIGTERM, in-flight uploads get this long to finish.
    shutdown_grace_s: float = 5.0
    # Expired pastes are never served (every read checks), so the sweep only
    # frees their space; once a minute keeps each sweep small.
    sweep_interval_s: float = 60.0
    # Pre-generated keys: enough for a burst of a few seconds of pastes.
    pool_target: int = 10_000
    pool_refill_interval_s: float = 5.0

    # -- live pastes --
    # A CI job may go quiet for minutes (a long compile, a test that sleeps);
    # plain `nc` never half-closes, so this gap is what ends its paste.
    live_idle_timeout_s: float = 300.0
    # The longest a live paste may stay open; a bounded hold on a connection.
    live_max_open_s: float = 6 * 3600.0
    live_per_client: int = 4
    # After connecting, a writer has this long to send a #!ncpaste line
    # before its URL is sent with the default options.
    live_preamble_window_s: float = 0.5
    # Readers see committed bytes only, so this is also their delay; 0.5 s
    # feels live and costs one small fsync per open paste per interval.
    live_commit_interval_s: float = 0.5

    # -- running in public (see README "Running in public") --
    #: Per-client limits on both ports; --limits off switches them all off.
    limits_enabled: bool = True
    # The limits' defaults and the reasons for them are written once, where
    # the limiter is (core/limits.py; core does not import this module).
    pastes_per_minute: int = limits.DEFAULT_PASTES_PER_MINUTE
    bytes_per_day: int = limits.DEFAULT_BYTES_PER_DAY
    connections_per_client: int = limits.DEFAULT_CONNECTIONS_PER_CLIENT
    # IPv6 clients are grouped by network: one host usually owns a whole /64.
    ipv6_prefix: int = limits.DEFAULT_V6_PREFIX
    # Memory bound of the limiter: least recently seen clients are forgotten.
    max_clients_tracked: int = limits.DEFAULT_MAX_CLIENTS_TRACKED
    #: CIDRs allowed / denied (deny wins); empty allow means everyone.
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    #: A file of "allow CIDR" / "deny CIDR" lines, re-read on SIGHUP.
    acl_file: Path | None = None
    #: Peers whose PROXY header / X-Forwarded-For / Forwarded is believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Mask well-known secret shapes in every paste, not only those asking redact=1.
    redact_default: bool = False

    #: Worker processes sharing the listeners and the store (--workers).
    workers: int = 1

    # -- operation --
    #: CIDRs that may read /metrics; empty means everyone.
    metrics_allow: tuple[str, ...] = ()
    #: How often the store's size and counts are read for /metrics.
    stats_interval_s: float = 15.0
    log_level: str = "info"
    #: text, logfmt or json
    log_format: str = "text"

    @property
    def base_url(self) -> str:
        return (self.url or _default_url(self.http)).rstrip("/")


# A shared cache serving a deleted paste for more than an hour defeats delete.
MAX_SHARED_CACHE_TTL_S = 3600


class Current:
    """The configuration a running server reads now: one snapshot, replaced
    whole on SIGHUP (never edited in place), so a connection that reads it
    once at its start sees one consistent set of settings."""

    __slots__ = ("config",)

    def __init__(self, config: Config) -> None:
        self.config = config


def check(config: Config) -> Config:
    """Cross-field checks; raises ValueError with a message naming the flag."""
    if not keys.MIN_KEY_LENGTH <= config.key_length <= keys.MAX_KEY_LENGTH:
        raise ValueError(
            f"--key-length must be {keys.MIN_KEY_LENGTH}..{keys.MAX_KEY_LENGTH} "
            f"(at least 60 bits of entropy)"
        )
    if config.default_expire_s > config.max_expire_s:
        raise ValueError(
            f"--default-expire ({units.format_duration(config.default_expire_s)}) is longer than "
            f"--max-expire ({units.format_duration(config.max_expire_s)})"
        )
    if config.url is not None and not config.url.startswith(("http://", "https://")):
        raise ValueError(f"--url must start with http:// or https://, got {config.url!r}")
    if not 0 <= config.store_cache_ttl_s <= 3600:
        raise ValueError("--store-cache-ttl must be 0..3600 seconds")
    if not 0 <= config.shared_cache_ttl_s <= MAX_SHARED_CACHE_TTL_S:
        raise ValueError(f"--shared-cache-ttl must be 0..{MAX_SHARED_CACHE_TTL_S} seconds")
    if not 1 <= config.sweep_interval_s <= 86400:
        raise ValueError("--sweep-interval must be 1 s..1 day")
    if not 1 <= config.ipv6_prefix <= 128:
        raise ValueError("--ipv6-prefix must be 1..128")
    for flag, value in (
        ("--pastes-per-minute", config.pastes_per_minute),
        ("--conns-per-client", config.connections_per_client),
        ("--max-connections", config.max_connections),
    ):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1")
    return config
