"""``--workers N``: one supervisor process and N worker processes.

The supervisor binds the listeners (or takes them from systemd) and starts N
copies of ``ncpaste serve`` that inherit them, each with its own trio loop
and its own handle on the shared LMDB environment (LMDB readers are lock-free
across processes; its writer lock, and with it the key pool, is shared). The
kernel hands each new connection to whichever worker accepts first. Periodic
jobs (sweep, key-pool refill, store stats) run in worker 0 only.

Workers report to the supervisor with systemd's notify protocol on a socket
of the supervisor's (READY=1 once serving, WATCHDOG=1 from their event loops),
so the supervisor knows when all are up (then tells systemd READY=1) and
restarts a worker that crashed or whose loop stopped answering. Workers die
with the supervisor (PR_SET_PDEATHSIG), so a kill -9 of the supervisor leaves
no orphan holding the ports or the store. SIGTERM/SIGINT and SIGHUP are passed
on to the workers.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import trio

from ncpaste.config import Address, Config
from ncpaste.net.metrics import MULTIPROC_ENV
from ncpaste.process import systemd

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "NCPASTE_WORKER_INDEX"
WORKER_COUNT_ENV = "NCPASTE_WORKER_COUNT"
WORKER_FDS_ENV = "NCPASTE_WORKER_FDS"
# Workers ping the supervisor this often; one silent for WATCHDOG_MISSES
# periods has a stuck event loop and is restarted.
WORKER_WATCHDOG_S = 2.0
WATCHDOG_MISSES = 5
# A worker that dies is restarted after this pause (a crash loop must not spin).
RESTART_DELAY_S = 1.0
# How long workers may take to become ready before start-up fails.
STARTUP_TIMEOUT_S = 60.0
# Listen backlog of the supervisor's own sockets (as the systemd units use).
BACKLOG = 4096
_PR_SET_PDEATHSIG = 1
# How often the supervisor looks whether a worker has exited.
EXIT_POLL_S = 0.2


def worker_index(environ: Mapping[str, str] = os.environ) -> int | None:
    value = environ.get(WORKER_INDEX_ENV)
    return int(value) if value is not None and value.isdigit() else None


def worker_sockets(environ: Mapping[str, str] = os.environ) -> dict[str, list[socket.socket]]:
    """The listeners a worker inherited from its supervisor, by name."""
    found: dict[str, list[socket.socket]] = {}
    for item in environ.get(WORKER_FDS_ENV, "").split(","):
        if not item:
            continue
        name, _, fd = item.partition(":")
        found.setdefault(name, []).append(socket.socket(fileno=int(fd)))
    return found


def worker_config(config: Config, count: int) -> Config:
    """Per-client limits split between the workers (the kernel spreads a
    client's connections over them), rounded up so none drops to zero."""
    def share(value: int) -> int:
        return max(1, math.ceil(value / count))

    return replace(
        config,
        pastes_per_minute=share(config.pastes_per_minute),
        bytes_per_day=share(config.bytes_per_day),
        connections_per_client=share(config.connections_per_client),
        live_per_client=share(config.live_per_client),
        max_connections=share(config.max_connections),
    )


def _bind(address: Address) -> socket.socket:
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def bind_listeners(config: Config, inherited: Mapping[str, list[socket.socket]]) -> dict[str, list[socket.socket]]:
    """The supervisor's listeners: systemd's by name, else bound here. Raises
    OSError naming nothing: the caller turns it into a start-up error."""
    wanted = {"netcat": config.tcp, "http": config.http}
    if config.live is not None:
        wanted["live"] = config.live
    listeners: dict[str, list[socket.socket]] = {}
    for name, address in wanted.items():
        if name in inherited:
            listeners[name] = list(inherited[name])
            continue
        try:
            listeners[name] = [_bind(address)]
        except OSError as exc:
            for socks in listeners.values():
                for sock in socks:
                    sock.close()
            raise OSError(exc.errno, f"cannot listen on {address} ({name}): {exc.strerror}") from None
    return listeners


async def _exited(process: subprocess.Popen[bytes]) -> int:
    """Wait for a child without blocking the loop (it is polled: the
    supervisor has a handful of children and nothing else to do)."""
    while process.poll() is None:
        await trio.sleep(EXIT_POLL_S)
    return process.returncode


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the supervisor dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Supervisor:
    def __init__(self, count: int, argv: Sequence[str], listeners: dict[str, list[socket.socket]], *,
                 grace_s: float, watchdog_s: float | None) -> None:
        self.count = count
        self.argv = list(argv)
        self.listeners = listeners
        self.grace_s = grace_s
        self.watchdog_s = watchdog_s
        self.stopping = False
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.last_ping: dict[int, float] = {}
        self.ready: set[int] = set()
        self.all_ready = trio.Event()
        self.failed_start: str | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="ncpaste-workers-"))
        self.metrics_dir = self.workdir / "metrics"
        self.metrics_dir.mkdir()
        self.notify_path = str(self.workdir / "notify")

    def _env(self, index: int) -> dict[str, str]:
        fds = ",".join(f"{name}:{sock.fileno()}" for name, socks in self.listeners.items() for sock in socks)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "WATCHDOG_"))}
        env.update({
            WORKER_INDEX_ENV: str(index),
            WORKER_COUNT_ENV: str(self.count),
            WORKER_FDS_ENV: fds,
            "NOTIFY_SOCKET": self.notify_path,
            "WATCHDOG_USEC": str(int(WORKER_WATCHDOG_S * 2_000_000)),
            MULTIPROC_ENV: str(self.metrics_dir),
        })
        return env

    async def run(self) -> int:
        notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        await notify.bind(self.notify_path)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen_notify, notify)
                for index in range(self.count):
                    nursery.start_soon(self._keep_running, index)
                nursery.start_soon(self._watch_workers)
                with trio.move_on_after(STARTUP_TIMEOUT_S) as waiting:
                    await self.all_ready.wait()
                if waiting.cancelled_caught or self.failed_start:
                    self.failed_start = self.failed_start or "workers did not start in time"
                    await self._stop_all()
                    nursery.cancel_scope.cancel()
                    return 1
                systemd.notify(f"READY=1\nSTATUS=serving with {self.count} workers")
                log.info("%d workers serving", self.count)
                if self.watchdog_s:
                    nursery.start_soon(self._ping_systemd)
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            self._signal_all(signal.SIGHUP)
                            continue
                        systemd.notify("STOPPING=1")
                        await self._stop_all()
                        nursery.cancel_scope.cancel()
                        break
            return 0
        finally:
            notify.close()
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _keep_running(self, index: int) -> None:
        while not self.stopping:
            # Popen in this (the main) thread on purpose: PR_SET_PDEATHSIG
            # fires when the *thread* that forked exits, and trio's
            # open_process forks from a worker thread that the thread cache
            # retires after a while, which would SIGKILL a healthy worker.
            process = subprocess.Popen(
                [sys.executable, "-m", "ncpaste", *self.argv],
                env=self._env(index),
                pass_fds=[sock.fileno() for socks in self.listeners.values() for sock in socks],
                preexec_fn=_die_with_parent,
            )
            self.processes[index] = process
            self.last_ping[index] = trio.current_time()
            code = await _exited(process)
            self._forget(process.pid)
            if self.stopping:
                return
            if index not in self.ready and not self.all_ready.is_set():
                self.failed_start = f"worker {index} exited with code {code} while starting"
                self.all_ready.set()
                return
            log.error("worker %d (pid %d) exited with code %d; restarting", index, process.pid, code)
            await trio.sleep(RESTART_DELAY_S)

    def _forget(self, pid: int) -> None:
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, str(self.metrics_dir))
        except Exception:  # metrics of a dead worker are best effort
            pass

    async def _listen_notify(self, sock: trio.socket.SocketType) -> None:
        while True:
            data = await sock.recv(4096)
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
            index = int(fields.get("WORKER", "-1")) if fields.get("WORKER", "").isdigit() else -1
            if index < 0:
                continue
            self.last_ping[index] = trio.current_time()
            if fields.get("READY") == "1":
                self.ready.add(index)
                if len(self.ready) >= self.count:
                    self.all_ready.set()

    async def _watch_workers(self) -> None:
        """Kill a worker whose event loop stopped pinging; _keep_running restarts it."""
        while True:
            await trio.sleep(WORKER_WATCHDOG_S)
            now = trio.current_time()
            for index, process in list(self.processes.items()):
                silent = now - self.last_ping.get(index, now)
                if process.poll() is None and silent > WORKER_WATCHDOG_S * WATCHDOG_MISSES:
                    log.error("worker %d silent for %.0f s: killing it", index, silent)
                    process.kill()

    async def _ping_systemd(self) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await trio.sleep(self.watchdog_s or 1.0)

    def _signal_all(self, signum: int) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signum)

    async def _stop_all(self) -> None:
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        with trio.move_on_after(self.grace_s + 10):
            for process in list(self.processes.values()):
                await _exited(process)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
