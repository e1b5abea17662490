"""Listeners, connection handlers, periodic jobs, and graceful shutdown."""

from __future__ import annotations

import errno
import logging
import math
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import trio

from ncpaste.config import Address, Config, Current
from ncpaste.net.deadlines import Deadlines
from ncpaste.net.guard import Guard
from ncpaste.net.hot import HotCache
from ncpaste.net.http import HttpConnection
from ncpaste.net.live import handle_live
from ncpaste.net.live_state import LiveRegistry
from ncpaste.net.metrics import Metrics
from ncpaste.net.netcat import handle_netcat
from ncpaste.net.pastes import Pastes, Site
from ncpaste.store import PasteStore
from ncpaste.store.factory import open_store
from ncpaste.store.lock import DataDirInUse, DataDirLock

log = logging.getLogger(__name__)

#: A port's connection handler, its dependencies bound by name (see ``serve_with_store``).
Handler = Callable[[trio.SocketStream], Awaitable[None]]
# Errors from accept() that mean "out of resources for now": wait and retry
# instead of dying (trio's serve_listeners does the same).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_S = 0.1
# While accept() stays out of resources (a flood past `ulimit -n`), one
# warning per this many seconds says so, with how many accepts failed: at
# one retry per _ACCEPT_RETRY_S, a line per failure would be 10 a second
# per port, and a flood would fill the disk with the log of itself.
OVERLOAD_LOG_INTERVAL_S = 10.0
# Errors of one accept that concern only that connection (it was reset
# before we took it): the next one is fine.
_ACCEPT_TRANSIENT_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}
# Connections taken from the kernel's queue in one go (see _accept_loop);
# the cap on connections bounds it too. Small enough that --workers sharing
# one queue usually share a burst: with 256, the worker that woke first took
# all 64 of wrk's connections in about half the bench runs and --workers 2
# ran at the speed of one. (It is not a guarantee: a worker that runs while
# the other is not scheduled still takes what it finds, 16 per turn.)
MAX_ACCEPT_BURST = 16


class StartupError(Exception):
    """The server cannot start (data dir unusable, port in use); one line for the user."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# What SIGHUP applies in place; everything else is read once at start.
RELOADABLE_FIELDS = frozenset({
    "limits_enabled", "pastes_per_minute", "bytes_per_day", "connections_per_client",
    "ipv6_prefix", "max_clients_tracked", "allow", "deny", "acl_file", "trusted_proxies",
    "log_level",
})


@dataclass
class Running:
    """What a started server exposes to its owner (the CLI, or a test)."""

    tcp_port: int
    http_port: int
    store: PasteStore
    guard: Guard
    current: Current
    site: Site
    live_port: int | None = None
    _stop: trio.Event = field(default_factory=trio.Event)

    @property
    def config(self) -> Config:
        """The configuration in force now (SIGHUP may have replaced it)."""
        return self.current.config

    def stop(self) -> None:
        """Stop accepting, let in-flight work finish within the grace, then return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_for_stop(self) -> None:
        await self._stop.wait()

    def reload(self, config: Config | None = None) -> None:
        """SIGHUP: apply what can change safely without dropping a connection
        (limits, allow/deny lists and the ACL file, trusted proxies, log
        level). Anything else that changed is named in a warning: it needs a
        restart."""
        guard = self.guard
        if config is None:
            guard.reload()
            return
        old = self.current.config
        changed = [
            name for name in old.__dataclass_fields__
            if getattr(old, name) != getattr(config, name) and name not in RELOADABLE_FIELDS
        ]
        # One snapshot for everyone: what is reloadable from the new file,
        # everything else as the server started. Handlers read it at the
        # start of each connection; the guard checks it and makes it current.
        applied = replace(old, **{name: getattr(config, name) for name in RELOADABLE_FIELDS})
        guard.reload(applied)
        if changed:
            log.warning("changed settings need a restart to apply: %s", ", ".join(sorted(changed)))


def raise_fd_limit() -> None:
    """Each connection is a file descriptor; the default soft limit (1024) is
    far below what max_connections allows, the hard limit usually is not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


async def _listen(address: Address, what: str) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(address.port, host=address.host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {address} ({what}): {reason}") from None


async def _accept_loop(
    listener: trio.SocketListener,
    handler: Handler,
    metrics: Metrics,
    handlers: trio.Nursery,
    limiter: trio.CapacityLimiter,
    port_name: str,
) -> None:
    """Accept connections and start a handler for each, while the shared
    cap on connections allows. Each wake-up takes every connection already
    waiting in the kernel's queue (up to MAX_ACCEPT_BURST): accepting one per
    turn of the event loop made the last of 64 clients arriving together
    wait 64 turns (about a second under load) for its first byte; 16 per
    turn, four."""
    waiting = _PendingConnections(listener)
    overload = _OverloadLog(port_name)
    async with listener:
        try:
            while True:
                token = object()
                await limiter.acquire_on_behalf_of(token)
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    limiter.release_on_behalf_of(token)
                    if exc.errno in _ACCEPT_CAPACITY_ERRNOS:
                        overload.failed(exc)
                        await trio.sleep(_ACCEPT_RETRY_S)
                        continue
                    raise
                except BaseException:
                    limiter.release_on_behalf_of(token)
                    raise
                overload.accepted()
                handlers.start_soon(_run_handler, handler, stream, metrics, limiter, token, port_name)
                for _ in range(MAX_ACCEPT_BURST):
                    token = object()
                    try:
                        limiter.acquire_on_behalf_of_nowait(token)
                    except trio.WouldBlock:
                        break  # at the cap: the next round waits for a free slot
                    more = waiting.take()
                    if more is None:
                        limiter.release_on_behalf_of(token)
                        break
                    handlers.start_soon(_run_handler, handler, more, metrics, limiter, token, port_name)
        finally:
            waiting.close()


class _OverloadLog:
    """The log of a port's accept() running out of resources: the first
    failure at once, then one line per OVERLOAD_LOG_INTERVAL_S with the
    count, and one line when accepting works again."""

    def __init__(self, port_name: str) -> None:
        self._port = port_name
        self._failed = 0  # since the last line
        self._last_line = -math.inf
        self._overloaded = False

    def failed(self, exc: OSError) -> None:
        self._failed += 1
        self._overloaded = True
        now = trio.current_time()
        if now - self._last_line < OVERLOAD_LOG_INTERVAL_S:
            return
        log.warning(
            "overload: accept on the %s port failed %d times since the last report: %s; retrying every %g s",
            self._port, self._failed, exc.strerror, _ACCEPT_RETRY_S,
        )
        self._failed, self._last_line = 0, now

    def accepted(self) -> None:
        if self._overloaded:
            log.warning("overload over: the %s port accepts again (%d more failed accepts)", self._port, self._failed)
            self._overloaded, self._failed, self._last_line = False, 0, -math.inf


class _PendingConnections:
    """The listener's queue read without waiting: a non-blocking duplicate
    of its socket, from which ``take`` accepts what the kernel already has."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self._sock = socket.socket(fileno=os.dup(listener.socket.fileno()))
        self._sock.setblocking(False)

    def take(self) -> trio.SocketStream | None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno in _ACCEPT_CAPACITY_ERRNOS or exc.errno in _ACCEPT_TRANSIENT_ERRNOS:
                return None  # the next awaited accept reports or retries it
            raise
        conn.setblocking(False)
        return trio.SocketStream(trio.socket.from_stdlib_socket(conn))

    def close(self) -> None:
        self._sock.close()


async def _run_handler(
    handler: Handler,
    stream: trio.SocketStream,
    metrics: Metrics,
    limiter: trio.CapacityLimiter,
    token: object,
    port_name: str,
) -> None:
    metrics.connection_opened(port_name)
    try:
        await handler(stream)
    except Exception:
        # One broken connection must never take the server down with it.
        log.exception("connection handler failed")
    finally:
        metrics.connection_closed(port_name)
        limiter.release_on_behalf_of(token)


async def _every(interval_s: float, job: Callable[[], Awaitable[int]], what: str) -> None:
    while True:
        try:
            done = await job()
            if done:
                log.info("%s: %d", what, done)
        except Exception:
            log.exception("%s failed; will retry", what)
        await trio.sleep(interval_s)


async def _listeners(
    inherited: Mapping[str, list[socket.socket]], name: str, address: Address, what: str
) -> list[trio.SocketListener]:
    """Sockets handed over by systemd socket activation under ``name``, or
    our own bound to ``address`` when started by hand."""
    if name in inherited:
        return [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in inherited[name]]
    return await _listen(address, what)


@dataclass
class Listeners:
    """The bound (or inherited) listening sockets of the three ports."""

    tcp: list[trio.SocketListener]
    http: list[trio.SocketListener]
    live: list[trio.SocketListener]

    async def aclose(self) -> None:
        for listener in self.tcp + self.http + self.live:
            await listener.aclose()


async def bind_listeners(config: Config, inherited: Mapping[str, list[socket.socket]] | None = None) -> Listeners:
    """Every port, bound before the store is touched, so that "port in
    use" is found before anything is written. Raises StartupError."""
    inherited = inherited or {}
    bound = Listeners([], [], [])
    try:
        bound.tcp = await _listeners(inherited, "netcat", config.tcp, "netcat port")
        bound.http = await _listeners(inherited, "http", config.http, "HTTP port")
        if config.live is not None or "live" in inherited:
            bound.live = await _listeners(inherited, "live", config.live or Address("0.0.0.0", 9998), "live port")
    except BaseException:
        await bound.aclose()
        raise
    return bound


async def serve_with_store(
    config: Config,
    store: PasteStore,
    clock_ms: Callable[[], int],
    *,
    metrics: Metrics | None = None,
    listeners: Listeners | None = None,
    inherited: Mapping[str, list[socket.socket]] | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ports (``listeners``, or bound now) on ``store`` until
    ``Running.stop()`` or cancellation."""
    if listeners is None:
        listeners = await bind_listeners(config, inherited)
    tcp, http, live = listeners.tcp, listeners.http, listeners.live
    http_port = http[0].socket.getsockname()[1]
    # With port 0 (tests) the URL must name the port actually bound.
    base_url = config.url or replace(config, http=Address(config.http.host, http_port)).base_url
    tcp_port = tcp[0].socket.getsockname()[1]
    live_port = live[0].socket.getsockname()[1] if live else None
    current = Current(config)
    guard, metrics = Guard(current), metrics or Metrics()
    pastes = Pastes(store, clock_ms, current)
    site = Site(config, base_url, tcp_port=tcp_port, live_port=live_port)
    live_registry = LiveRegistry()
    # Each port's handler with what it needs, by name: nothing carries all of it.
    on_tcp = partial(handle_netcat, current=current, pastes=pastes, site=site, guard=guard, metrics=metrics)
    hot = HotCache()
    deadlines = Deadlines()

    async def on_http(stream: trio.SocketStream) -> None:
        connection = HttpConnection(
            stream, current=current, pastes=pastes, site=site, guard=guard, metrics=metrics, hot=hot, live=live_registry,
            deadlines=deadlines,
        )
        await connection.serve()

    on_live = partial(
        handle_live, current=current, pastes=pastes, site=site, guard=guard, metrics=metrics, live=live_registry
    )
    running = Running(
        tcp_port=tcp_port, http_port=http_port, store=store, guard=guard, current=current, site=site,
        live_port=live_port,
    )
    # One cap over both ports: it bounds file descriptors and memory.
    connections = trio.CapacityLimiter(config.max_connections)
    async with trio.open_nursery() as watcher:
        # The connections' deadlines and the metrics' batches: until the
        # last handler ends (during the shutdown grace too).
        watcher.start_soon(deadlines.run)
        watcher.start_soon(metrics.run_flusher)
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:
                for listener in tcp:
                    acceptors.start_soon(_accept_loop, listener, on_tcp, metrics, handlers, connections, "tcp")
                for listener in http:
                    acceptors.start_soon(_accept_loop, listener, on_http, metrics, handlers, connections, "http")
                for listener in live:
                    acceptors.start_soon(_accept_loop, listener, on_live, metrics, handlers, connections, "live")
                log.info(
                    "serving netcat on port %d, HTTP on port %d, live on %s, URLs %s/",
                    running.tcp_port, running.http_port, running.live_port or "off", site.base_url,
                )
                task_status.started(running)
                await running.wait_for_stop()
                log.info("shutting down: no new connections; %g s grace for in-flight work", config.shutdown_grace_s)
                acceptors.cancel_scope.cancel()
            handlers.cancel_scope.deadline = trio.current_time() + config.shutdown_grace_s
        watcher.cancel_scope.cancel()
    metrics.flush()


def lock_data_dir(config: Config) -> DataDirLock:
    """The one-server-per-data-dir lock, taken before anything else at
    start (also for S3 nodes: their key pool lives there). Raises StartupError."""
    try:
        return DataDirLock.acquire(config.data_dir)
    except DataDirInUse as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot open data dir {str(config.data_dir)!r}: {exc.strerror or exc}") from None


async def recover_store(config: Config) -> int:
    """Close the live pastes a crash left open (the --workers supervisor
    does this once, before any worker starts); returns how many."""
    async with open_store(config, wall_clock_ms) as store:
        return await store.recover_live()


async def serve(
    config: Config,
    *,
    clock_ms: Callable[[], int] = wall_clock_ms,
    inherited: Mapping[str, list[socket.socket]] | None = None,
    run_jobs: bool = True,
    recover: bool = True,
    lock: bool = True,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Lock the data dir (``lock``; a --workers supervisor holds it for its
    workers), bind the ports, open the store, close live pastes a crash left
    open (``recover``; the supervisor does it before starting workers), run
    the periodic jobs (in one worker only: ``run_jobs``), and serve.

    The order matters: nothing is written to the store before this process
    knows it is the only server on the data dir and has its ports."""
    held = lock_data_dir(config) if lock else None
    try:
        listeners = await bind_listeners(config, inherited)
        try:
            await _serve_on(config, listeners, clock_ms, run_jobs, recover, task_status)
        finally:
            await listeners.aclose()
    finally:
        if held is not None:
            held.release()


async def _serve_on(
    config: Config,
    listeners: Listeners,
    clock_ms: Callable[[], int],
    run_jobs: bool,
    recover: bool,
    task_status: trio.TaskStatus[Running],
) -> None:
    async with open_store(config, clock_ms) as store, trio.open_nursery() as jobs:
        recovered = await store.recover_live() if recover else 0
        if recovered:
            log.warning("%d live pastes were left open by a crash: kept, marked incomplete", recovered)
        metrics = Metrics()

        async def sweep() -> int:
            started = trio.current_time()
            removed = await store.sweep_expired()
            metrics.observe_sweep(trio.current_time() - started)
            metrics.expired_removed(removed)
            return removed

        async def read_stats() -> int:
            stats = await store.stats()
            metrics.set_store_stats(stats.pastes, stats.pool_keys, stats.disk_bytes)
            return 0

        if run_jobs:
            jobs.start_soon(_every, config.pool_refill_interval_s, store.refill_pool, "key pool refilled")
            jobs.start_soon(_every, config.sweep_interval_s, sweep, "expired pastes removed")
            jobs.start_soon(_every, config.stats_interval_s, read_stats, "store stats")

        async def serve_then_stop_jobs(*, task_status: trio.TaskStatus[Running]) -> None:
            await serve_with_store(
                config, store, clock_ms, metrics=metrics, listeners=listeners, task_status=task_status
            )
            jobs.cancel_scope.cancel()

        task_status.started(await jobs.start(serve_then_stop_jobs))
