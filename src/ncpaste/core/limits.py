"""Per-client abuse controls: who may connect, and how much each client may paste.

Two pieces, both sans-IO:

* ``AccessList`` answers "may this address use the service at all" from
  allow/deny CIDR lists (an operator's file, re-read on SIGHUP).
* ``ClientLimiter`` counts connections per client and meters pastes with two
  token buckets per client: pastes per minute and stored bytes per day.

A "client" is what ``client_key`` makes of an address: the IPv4 address itself,
or the IPv6 network around it, because one host commonly owns a whole /64 and
can pick a fresh address in it for every connection (RFC 8981 temporary
addresses), so per-address limits would not limit it.

Time is passed in as float seconds from a monotonic clock; nothing here reads a
clock. Every call is O(1) and the limiter's memory is bounded by
``max_clients_tracked``: least recently seen clients are forgotten. A client
with open connections is never forgotten, so its connection count stays right.

Forgetting is the price of the memory bound: someone controlling more client
keys than ``max_clients_tracked`` (many IPv4 addresses, or an IPv6 allocation
larger than that many /64s) can push their own depleted entries out and start
afresh. Against such a network, raise ``max_clients_tracked``, lower the
IPv6 prefix, or deny it in the access list.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ncpaste.core.addresses import IPAddress, IPNetwork, parse_address, parse_network

# One host usually owns a whole /64 (SLAAC, RFC 4291 section 2.5.1; RFC 8981
# temporary addresses rotate inside it), so a /64 is the smallest IPv6 unit
# that is one client rather than one of a client's many addresses.
DEFAULT_V6_PREFIX = 64

# The paste bucket refills over a minute: burst = pastes_per_minute.
MINUTE_S = 60
# The byte bucket refills over a day: a rolling daily budget.
DAY_S = 86_400

# A person or a CI job pastes a few logs a minute; 30 with a burst of 30 never
# gets in their way and stops a script from flooding the store.
DEFAULT_PASTES_PER_MINUTE = 30
# Even 30 pastes a minute of 10 MiB would be 400 GiB a day; 1 GiB a day per
# client is ~100 maximum-size pastes, generous for logs, and bounds what one
# address can store.
DEFAULT_BYTES_PER_DAY = 1024**3
# Enough for a CI runner's parallel jobs behind one NAT address, and a small
# share of the server's max_connections, so one client cannot take them all.
DEFAULT_CONNECTIONS_PER_CLIENT = 32
# A tracked client costs under 300 bytes (entry, dict slot and an IPv6 key
# string; measured 272), so 100,000 clients is under 30 MB: more distinct
# clients than a paste service sees in a day, at a cost no flood can exceed.
DEFAULT_MAX_CLIENTS_TRACKED = 100_000

# Float time arithmetic is off by a few ulps. A client that is within a
# millisecond of its next token gets it, so waiting exactly the advertised
# retry_after_s always succeeds; a millisecond of refill is worth at most
# 1/2000 of a paste at the default rate, nothing an abuser can use.
CLOCK_SLACK_S = 1e-3
# A connection slot frees when one of the client's own connections ends, which
# the core cannot predict; a netcat paste ends a few seconds after its sender
# stops, so a few seconds is an honest hint.
CONNECTIONS_RETRY_AFTER_S = 5

REASONS = ("pastes", "bytes", "connections")


def client_key(ip: str, *, v6_prefix: int = DEFAULT_V6_PREFIX) -> str:
    """The identity limits are counted against: the IPv4 address, or the IPv6
    ``/v6_prefix`` network holding the address (``"2001:db8:1:2::/64"``).

    IPv4-mapped IPv6 addresses count as their IPv4 address, so a client is the
    same client on a dual-stack socket and an IPv4 one. Raises ValueError for
    anything that is not an IP address, or a prefix outside 0..128.
    """
    if not 0 <= v6_prefix <= 128:
        raise ValueError(f"IPv6 prefix must be 0..128, got {v6_prefix}")
    addr = parse_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    # int() drops any zone ("%eth0"): a zone is not part of who the client is.
    host_bits = 128 - v6_prefix
    network = (int(addr) >> host_bits) << host_bits
    return str(ipaddress.IPv6Network((network, v6_prefix)))


@dataclass(frozen=True)
class LimitSettings:
    """The limiter's limits; reloadable as a whole with ``replace_settings``."""

    #: Paste token bucket: refills at this many a minute, burst of this many.
    pastes_per_minute: int = DEFAULT_PASTES_PER_MINUTE
    #: Stored-bytes token bucket refilling continuously over 24 h.
    bytes_per_day: int = DEFAULT_BYTES_PER_DAY
    connections_per_client: int = DEFAULT_CONNECTIONS_PER_CLIENT
    max_clients_tracked: int = DEFAULT_MAX_CLIENTS_TRACKED
    #: False switches every limit off (``--limits off``).
    enabled: bool = True

    def __post_init__(self) -> None:
        # Zero would refuse everything forever (or divide by zero); "no limit"
        # is spelled enabled=False.
        for name in ("pastes_per_minute", "bytes_per_day", "connections_per_client", "max_clients_tracked"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Refused(Exception):
    """A client went over one of its limits.

    Deliberately not a ``PasteError``: the shell decides what the client is
    told (HTTP 429 with Retry-After, or a netcat ``error:`` line), from
    ``reason`` (``"pastes"``, ``"bytes"`` or ``"connections"``) and
    ``retry_after_s`` (whole seconds, at least 1).
    """

    def __init__(self, reason: str, retry_after_s: int | float) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.reason = reason
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(f"over the {reason} limit, retry in {self.retry_after_s} s")

    def __reduce__(self) -> tuple[type[Refused], tuple[str, int]]:
        # Exception pickling replays args (the message); keep the fields instead.
        return (type(self), (self.reason, self.retry_after_s))


class _Client:
    """What the limiter remembers about one client: two buckets and a count."""

    __slots__ = ("paste_tokens", "byte_tokens", "updated", "connections")

    def __init__(self, settings: LimitSettings, now: float) -> None:
        self.paste_tokens = float(settings.pastes_per_minute)
        self.byte_tokens = float(settings.bytes_per_day)
        self.updated = now
        self.connections = 0


def _wait_s(tokens: float, need: float, rate: float, window_s: int) -> float:
    """Seconds until a bucket holding ``tokens`` and refilling at ``rate`` a
    second holds ``need``; 0 if it already does.

    Never more than ``window_s``, the time an empty bucket takes to fill:
    rounding can put the quotient a hair above it (85 / (85 / 86400) is
    86400.00000000001), which would advertise a day and a second.
    """
    deficit = need - tokens
    if deficit <= 0:
        return 0.0
    return min(deficit / rate, window_s)


class ClientLimiter:
    """Connection counts and paste/byte budgets per client key, in bounded memory.

    Clients with open connections live in ``_connected`` and are never
    forgotten; the others live in ``_idle``, oldest first, and the oldest is
    forgotten when a new client needs room. If every slot holds a connected
    client, a new client is refused (reason ``"connections"``): the global
    bound protects memory before fairness.

    The shell calls ``connect`` when a connection opens and ``disconnect``
    when it closes (always, in a ``finally``); ``check_paste`` before reading
    an upload's body, so an over-limit client is told at once; and ``charge``
    when the paste is about to be stored, since only then is its size known.
    """

    def __init__(self, settings: LimitSettings) -> None:
        self._idle: OrderedDict[str, _Client] = OrderedDict()
        self._connected: dict[str, _Client] = {}
        self._apply(settings)

    def _apply(self, settings: LimitSettings) -> None:
        self.settings = settings
        self._paste_rate = settings.pastes_per_minute / MINUTE_S
        self._byte_rate = settings.bytes_per_day / DAY_S

    def replace_settings(self, settings: LimitSettings) -> None:
        """New limits (SIGHUP reload), keeping what is known about each client.

        Buckets take the new rates from now on and are capped to the new
        capacities; a lower ``max_clients_tracked`` forgets the oldest idle
        clients at once. Switching the limiter off or on starts from empty:
        connections that opened or closed while it was off were never counted,
        and stale counts would refuse clients forever.
        """
        toggled = settings.enabled != self.settings.enabled
        self._apply(settings)
        if toggled:
            self._idle.clear()
            self._connected.clear()
            return
        excess = self.tracked() - settings.max_clients_tracked
        while excess > 0 and self._idle:
            self._idle.popitem(last=False)
            excess -= 1

    def tracked(self) -> int:
        """How many clients are remembered (for metrics and tests)."""
        return len(self._idle) + len(self._connected)

    def connect(self, key: str, now: float) -> None:
        """Count a new connection from ``key``. Raises Refused("connections")
        if the client already holds ``connections_per_client``, or if it is new
        and every tracked client holds a connection."""
        if not self.settings.enabled:
            return
        client = self._find_or_add(key, now)
        if client.connections >= self.settings.connections_per_client:
            raise Refused("connections", CONNECTIONS_RETRY_AFTER_S)
        if client.connections == 0:
            del self._idle[key]
            self._connected[key] = client
        client.connections += 1

    def disconnect(self, key: str, now: float) -> None:
        """A connection from ``key`` ended. Never raises and never counts
        below zero (a disconnect the limiter did not see connect is ignored)."""
        if not self.settings.enabled:
            return
        client = self._connected.get(key)
        if client is None:
            if key in self._idle:
                self._idle.move_to_end(key)
            return
        self._refill(client, now)
        client.connections -= 1
        if client.connections == 0:
            del self._connected[key]
            self._idle[key] = client
            # After a reload lowered max_clients_tracked, connected clients may
            # hold more than the bound; each one that goes idle gives a slot back.
            if self.tracked() > self.settings.max_clients_tracked:
                self._idle.popitem(last=False)

    def check_paste(self, key: str, now: float) -> None:
        """Before an upload's body is read, so an over-limit client is told at
        once: raises Refused("pastes") if the client has no paste left, with
        retry_after_s until it has one. Consumes nothing; ``charge`` does."""
        if not self.settings.enabled:
            return
        # A client never seen has full buckets: nothing to check or remember.
        client = self._find(key, now)
        if client is None:
            return
        wait_s = _wait_s(client.paste_tokens, 1, self._paste_rate, MINUTE_S)
        if wait_s > CLOCK_SLACK_S:
            raise Refused("pastes", wait_s)

    def charge(self, key: str, size: int, now: float) -> None:
        """A paste of ``size`` bytes is about to be stored: take one paste and
        ``size`` bytes from the client's budgets.

        All or nothing: if either budget is short, raises Refused and consumes
        nothing. ``retry_after_s`` is when both budgets will suffice, and
        ``reason`` names the one that takes longer. A paste bigger than the
        whole daily budget never fits; it is refused with a full day. A
        client not yet remembered is refused ("connections") only when every
        tracked client holds a connection, as in ``connect``.
        """
        if not self.settings.enabled:
            return
        if size < 0:
            raise ValueError(f"paste size must not be negative, got {size}")
        if size > self.settings.bytes_per_day:
            raise Refused("bytes", DAY_S)
        client = self._find_or_add(key, now)
        paste_wait_s = _wait_s(client.paste_tokens, 1, self._paste_rate, MINUTE_S)
        byte_wait_s = _wait_s(client.byte_tokens, size, self._byte_rate, DAY_S)
        if paste_wait_s > CLOCK_SLACK_S or byte_wait_s > CLOCK_SLACK_S:
            if byte_wait_s >= paste_wait_s:
                raise Refused("bytes", byte_wait_s)
            raise Refused("pastes", paste_wait_s)
        client.paste_tokens -= 1
        client.byte_tokens -= size

    def _find(self, key: str, now: float) -> _Client | None:
        """The client's entry refilled to ``now`` and marked most recently
        seen, or None if the client is not remembered."""
        client = self._connected.get(key)
        if client is None:
            client = self._idle.get(key)
            if client is None:
                return None
            self._idle.move_to_end(key)
        self._refill(client, now)
        return client

    def _find_or_add(self, key: str, now: float) -> _Client:
        """The client's entry, new (with full buckets) if it was not
        remembered; room is made by forgetting the least recently seen idle
        client. Raises Refused("connections") if every slot holds a
        connected client."""
        client = self._find(key, now)
        if client is not None:
            return client
        # More than the bound only after a reload lowered it, and then
        # nothing is idle; the check below refuses until connections close.
        if self.tracked() >= self.settings.max_clients_tracked:
            if not self._idle:
                raise Refused("connections", CONNECTIONS_RETRY_AFTER_S)
            self._idle.popitem(last=False)
        client = self._idle[key] = _Client(self.settings, now)
        return client

    def _refill(self, client: _Client, now: float) -> None:
        """Add what the buckets earned since the client was last seen, capped
        at their capacities. A ``now`` earlier than the last one (two tasks
        reading the clock in a different order) earns nothing."""
        elapsed = now - client.updated
        if elapsed > 0:
            client.paste_tokens += elapsed * self._paste_rate
            client.byte_tokens += elapsed * self._byte_rate
            client.updated = now
        settings = self.settings
        if client.paste_tokens > settings.pastes_per_minute:
            client.paste_tokens = float(settings.pastes_per_minute)
        if client.byte_tokens > settings.bytes_per_day:
            client.byte_tokens = float(settings.bytes_per_day)


class _NetworkSet:
    """Networks of one address family, looked up with one set probe per
    distinct prefix length (at most 33 or 129), however many entries."""

    def __init__(self, max_prefix: int) -> None:
        self._max_prefix = max_prefix
        self._by_length: dict[int, set[int]] = {}

    def add(self, network: IPNetwork) -> None:
        shift = self._max_prefix - network.prefixlen
        self._by_length.setdefault(network.prefixlen, set()).add(int(network.network_address) >> shift)

    def __contains__(self, addr: IPAddress) -> bool:
        value = int(addr)
        return any(value >> (self._max_prefix - length) in prefixes for length, prefixes in self._by_length.items())

    def __bool__(self) -> bool:
        return bool(self._by_length)


class AccessList:
    """Which addresses may use the service: deny wins over allow, and an empty
    allow list allows everyone not denied.

    Entries are CIDRs (``192.0.2.0/24``, ``2001:db8::/32``) or bare addresses.
    Addresses are compared unmapped, so ``::ffff:192.0.2.7`` from a dual-stack
    socket matches ``192.0.2.0/24``; an IPv6 entry (even ``::/0``) matches
    native IPv6 clients only. A lookup costs one set probe per distinct
    prefix length, however long the lists are.
    """

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> None:
        if isinstance(allow, str) or isinstance(deny, str):
            raise TypeError("allow and deny are sequences of CIDR strings, not one string")
        #: The entries as given, e.g. to merge two lists into one.
        self.allow_entries: tuple[str, ...] = tuple(allow)
        self.deny_entries: tuple[str, ...] = tuple(deny)
        self._allow = self._build("allow", self.allow_entries)
        self._deny = self._build("deny", self.deny_entries)

    @staticmethod
    def _build(kind: str, entries: Sequence[str]) -> tuple[_NetworkSet, _NetworkSet]:
        v4, v6 = _NetworkSet(32), _NetworkSet(128)
        for entry in entries:
            try:
                network = parse_network(entry)
            except ValueError as exc:
                raise ValueError(f"{kind} entry: {exc}") from None
            (v4 if network.version == 4 else v6).add(network)
        return v4, v6

    def permits(self, ip: str) -> bool:
        """May ``ip`` use the service? Raises ValueError if it is not an address."""
        addr = parse_address(ip)
        family = 0 if addr.version == 4 else 1
        if addr in self._deny[family]:
            return False
        if not (self._allow[0] or self._allow[1]):
            return True
        return addr in self._allow[family]

    @classmethod
    def from_file_text(cls, text: str) -> AccessList:
        """Parse an ACL file: one ``allow CIDR`` or ``deny CIDR`` a line;
        ``#`` starts a comment; blank lines are ignored. Raises ValueError
        naming the line number."""
        allow: list[str] = []
        deny: list[str] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if len(words) != 2 or words[0] not in ("allow", "deny"):
                shown = line if len(line) <= 80 else line[:80] + "..."
                raise ValueError(f"line {number}: expected 'allow CIDR' or 'deny CIDR', got {shown!r}")
            try:
                parse_network(words[1])
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
            (allow if words[0] == "allow" else deny).append(words[1])
        return cls(allow, deny)

    def __repr__(self) -> str:
        return f"AccessList(allow={list(self.allow_entries)!r}, deny={list(self.deny_entries)!r})"
