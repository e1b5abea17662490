"""ncpaste's Prometheus metrics: what the handlers count, and the text a scraper reads.

One ``Metrics`` object per server, passed explicitly like ``Config``. Its
metrics live in a registry of its own, never prometheus_client's global default
registry, so two servers in one process (tests do this) count separately and
nothing is shared through module state.

Bounded labels: every label value comes from a fixed set below. A value
outside its set (a new error reason nobody added here, a bug, text that came
from a client) is recorded as ``"other"``, so the number of series can never
grow without limit — each new label value is a new series kept in memory and
stored by Prometheus for as long as it exists. A non-zero ``other`` series means
a handler passes a value this module does not know yet: add it to the set.

Every recording method is O(1) and cheap enough for hot paths: the series for
known label values are looked up once at construction, so recording is a dict
lookup and an increment. Recording never raises for a bad number: a negative
size or count is recorded as nothing (counters only go up), a negative
duration as zero. Request durations and bytes sent reach prometheus_client
in batches (``flush``, at every scrape: see ``FLUSH_INTERVAL_S``). ``render``
reads only the metrics; it never touches the
store (store figures arrive through ``set_store_stats`` from a periodic job).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import product
from typing import Generic, TypeVar

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Recorded instead of any label value outside its fixed set.
OTHER = "other"
#: prometheus_client reads this at import: set only by the --workers supervisor.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Where a paste or connection came in: the netcat port, the HTTP port, and
#: live (streamed) pastes.
PORTS = ("tcp", "http", "live")
#: How a netcat paste ended: the client half-closed (FIN) or went quiet.
NETCAT_ENDINGS = ("fin", "idle")
#: What a timed request did.
REQUEST_KINDS = ("create", "read")
#: Every ``PasteError.reason`` (``core.errors``, plus ``core.proxy``'s
#: ProxyHeaderError). A test checks this list against the whole exception tree,
#: so a new error cannot silently be counted as "other".
REJECTION_REASONS = (
    "internal",
    "bad_request",
    "bad_option",
    "proxy_header",
    "empty",
    "alias_invalid",
    "forbidden",
    "denied",
    "not_found",
    "method_not_allowed",
    "alias_taken",
    "cross_site",
    "unsupported_form",
    "too_large",
    "not_text",
    "range",
    "rate_limited",
    "headers_too_large",
    "not_implemented",
    "http_version",
    "storage_full",
    "storage_unavailable",
    "corrupt",
    "timeout",
)

# Request durations: a small paste read from the page cache answers in well
# under a millisecond, so finer buckets would only measure the event loop;
# above 10 s the time is the client's (a slow upload or reader, up to the
# upload and send timeouts), not ours, and +Inf counts it. Steps of 2-2.5x
# bound a quantile estimate's error to about that factor with 14 buckets,
# each of which is one more series per kind.
REQUEST_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Expiry sweeps: a sweep with nothing to remove takes about a millisecond; one
# clearing a large backlog (many batched LMDB write transactions, each with an
# fsync) can take tens of seconds. Past a minute, sweeping takes longer than the
# default pause between sweeps (60 s): worth seeing however slow, +Inf counts it.
SWEEP_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)

# Request durations and bytes sent are recorded on every request. They are
# kept as plain numbers and handed to prometheus_client in batches (each of
# its observations takes locks and, with --workers, writes a shared file;
# on the read path that was a few percent of a GET): at every scrape of this
# process, every FLUSH_INTERVAL_S (``run_flusher``; so a scrape answered by
# another worker is at most that late), when MAX_PENDING_OBSERVATIONS are
# waiting, and when the server stops.
FLUSH_INTERVAL_S = 1.0
MAX_PENDING_OBSERVATIONS = 65536

_Child = TypeVar("_Child", Counter, Gauge, Histogram)


class _BoundedSeries(Generic[_Child]):
    """A labelled metric whose label values come from fixed sets.

    The series for every combination of known values exist from the start (at
    zero, so ``rate()`` and alerts see them before the first event) and are
    found with one dict lookup. Any unknown value is replaced by ``OTHER``;
    those rare series are made on first use, and never cached under the raw
    value, so hostile input cannot grow even the cache.
    """

    def __init__(self, metric: _Child, *allowed: Sequence[str]) -> None:
        self._metric: _Child = metric
        self._allowed = tuple(frozenset(values) for values in allowed)
        self._known: dict[tuple[str, ...], _Child] = {
            values: metric.labels(*values) for values in product(*allowed)
        }

    def __call__(self, *values: str) -> _Child:
        child = self._known.get(values)
        if child is None:
            bounded = (value if value in allowed else OTHER for value, allowed in zip(values, self._allowed))
            child = self._metric.labels(*bounded)
        return child


class Metrics:
    """All of ncpaste's Prometheus metrics, in a registry of its own (never the global default registry)."""

    def __init__(self) -> None:
        self._multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self._registry = CollectorRegistry(auto_describe=True)
        registry = self._registry

        pastes = Counter(
            "ncpaste_pastes", "Paste attempts by port and outcome (created or rejected).",
            ["port", "outcome"], registry=registry,
        )
        self._pastes = _BoundedSeries(pastes, PORTS, ("created", "rejected"))
        rejections = Counter(
            "ncpaste_rejections", "Rejected pastes by port and reason (PasteError.reason).",
            ["port", "reason"], registry=registry,
        )
        self._rejections = _BoundedSeries(rejections, PORTS, REJECTION_REASONS)
        bytes_in = Counter(
            "ncpaste_bytes_in", "Bytes of created pastes, as received, by port.", ["port"], registry=registry,
        )
        self._bytes_in = _BoundedSeries(bytes_in, PORTS)
        self._bytes_out = Counter("ncpaste_bytes_out", "Paste bytes sent to readers.", registry=registry)
        endings = Counter(
            "ncpaste_netcat_endings", "How netcat pastes ended: fin (half-close) or idle (quiet gap).",
            ["how"], registry=registry,
        )
        self._endings = _BoundedSeries(endings, NETCAT_ENDINGS)
        requests = Histogram(
            "ncpaste_request_duration_seconds", "Time to create or read a paste.",
            ["kind"], buckets=REQUEST_BUCKETS_S, registry=registry,
        )
        self._requests = _BoundedSeries(requests, REQUEST_KINDS)
        #: Durations not yet observed, by kind; bytes sent not yet counted.
        self._pending: dict[str, list[float]] = {kind: [] for kind in REQUEST_KINDS}
        self._pending_bytes_out = 0
        connections = Gauge(
            "ncpaste_open_connections", "Connections open now, by port.", ["port"], registry=registry,
            multiprocess_mode="livesum",
        )
        self._connections = _BoundedSeries(connections, PORTS)
        self._live_open = Gauge(
            "ncpaste_live_pastes_open", "Live pastes still being written.", registry=registry,
            multiprocess_mode="livesum",
        )
        self._live_readers = Gauge(
            "ncpaste_live_readers", "Readers following live pastes.", registry=registry,
            multiprocess_mode="livesum",
        )
        self._expired = Counter("ncpaste_expired_removed", "Expired pastes removed by sweeps.", registry=registry)
        self._sweeps = Histogram(
            "ncpaste_sweep_duration_seconds", "Time one expiry sweep took.",
            buckets=SWEEP_BUCKETS_S, registry=registry,
        )
        self._store_pastes = Gauge(
            "ncpaste_store_pastes", "Pastes in the store at the last stats update.", registry=registry,
            multiprocess_mode="max",
        )
        self._pool_keys = Gauge(
            "ncpaste_key_pool_size", "Unused keys in the key pool at the last stats update.", registry=registry,
            multiprocess_mode="max",
        )
        self._disk_bytes = Gauge(
            "ncpaste_store_disk_bytes", "Bytes the store uses on disk at the last stats update.", registry=registry,
            multiprocess_mode="max",
        )

    # -- pastes ------------------------------------------------------------------

    def paste_created(self, port: str, size: int) -> None:
        """A paste of ``size`` bytes (as received) was stored via ``port``."""
        self._pastes(port, "created").inc()
        if size > 0:
            self._bytes_in(port).inc(size)

    def paste_rejected(self, port: str, reason: str) -> None:
        """A paste via ``port`` was refused; ``reason`` is the PasteError's ``reason``."""
        self._pastes(port, "rejected").inc()
        self._rejections(port, reason).inc()

    def netcat_ended(self, how: str) -> None:
        """A netcat upload ended by ``"fin"`` or ``"idle"``."""
        self._endings(how).inc()

    def bytes_out(self, n: int) -> None:
        """``n`` paste bytes went out to a reader."""
        if n > 0:
            self._pending_bytes_out += n

    def observe_request(self, kind: str, seconds: float) -> None:
        """A ``"create"`` or ``"read"`` took ``seconds`` (from a monotonic clock)."""
        pending = self._pending.get(kind)
        if pending is None:  # not a kind of ours: counted as "other" at once
            self._requests(kind).observe(max(0.0, seconds))
            return
        pending.append(seconds)
        if len(pending) >= MAX_PENDING_OBSERVATIONS:
            self.flush()

    def flush(self) -> None:
        """Hand what was recorded since the last flush to prometheus_client."""
        for kind, pending in self._pending.items():
            if pending:
                observe = self._requests(kind).observe
                for seconds in pending:
                    observe(seconds if seconds > 0.0 else 0.0)
                pending.clear()
        if self._pending_bytes_out:
            self._bytes_out.inc(self._pending_bytes_out)
            self._pending_bytes_out = 0

    async def run_flusher(self) -> None:
        """Until cancelled: ``flush`` every ``FLUSH_INTERVAL_S``."""
        while True:
            await trio.sleep(FLUSH_INTERVAL_S)
            self.flush()

    # -- connections and live pastes -------------------------------------------

    def connection_opened(self, port: str) -> None:
        self._connections(port).inc()

    def connection_closed(self, port: str) -> None:
        self._connections(port).dec()

    def live_opened(self) -> None:
        self._live_open.inc()

    def live_closed(self) -> None:
        self._live_open.dec()

    def readers_changed(self, delta: int) -> None:
        """Live readers came (``delta`` > 0) or went (``delta`` < 0)."""
        self._live_readers.inc(delta)

    # -- store -------------------------------------------------------------------

    def expired_removed(self, n: int) -> None:
        """A sweep removed ``n`` expired pastes."""
        if n > 0:
            self._expired.inc(n)

    def observe_sweep(self, seconds: float) -> None:
        self._sweeps.observe(max(0.0, seconds))

    def set_store_stats(self, pastes: int, pool_keys: int, disk_bytes: int) -> None:
        """Store figures from the periodic stats job (render never asks the
        store). A negative figure is one the store cannot know cheaply (S3
        keeps no count): left out."""
        if pastes >= 0:
            self._store_pastes.set(pastes)
        self._pool_keys.set(pool_keys)
        if disk_bytes >= 0:
            self._disk_bytes.set(disk_bytes)

    # -- exposition --------------------------------------------------------------

    def render(self) -> tuple[bytes, bytes]:
        """(body, content type) in the Prometheus text exposition format.

        With several worker processes (``--workers``), prometheus_client's
        multiprocess mode keeps each worker's values in files under
        ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before the workers
        start), and a scrape of any worker adds up all of them."""
        self.flush()
        if self._multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)
            return generate_latest(registry), CONTENT_TYPE_LATEST.encode("ascii")
        return generate_latest(self._registry), CONTENT_TYPE_LATEST.encode("ascii")
