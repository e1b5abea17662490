"""Side-by-side benchmark: ncpaste against fiche, nginx and pinnwand, on loopback.

    .venv/bin/python bench/bench.py             # every figure: 5 rounds, about 11 minutes on 2 cores
    .venv/bin/python bench/bench.py --quick     # about a minute; CI runs this to keep it working
    .venv/bin/python bench/bench.py --install   # apt/pip install the references first
    .venv/bin/python bench/bench.py --json out.json --rounds 3 --only ingest,get

One command starts ncpaste and the references in the same run, on 127.0.0.1
only, drives them with the same clients, and prints a markdown table of
absolute figures and ratios. A ratio is always ncpaste / reference and is
taken inside each round (both sides measured back to back, the order
alternating between rounds), so a machine that is busier in one round than
in another moves both sides of that round's ratio alike; the table shows the
median over the rounds with min-max.

The references:

* fiche (Debian's package, the C server behind termbin) for netcat ingest:
  one thread per connection, one recv() into a buffer of -B bytes, a file per
  paste, and no fsync. ncpaste answers only after an fsync'd LMDB commit.
* nginx (Debian) serving static files of exactly the same bytes as the
  pastes, with a generated config (worker_processes auto, access_log off,
  keep-alive, sendfile, gzip off; gzip_static and a precompressed .zst file
  for the Accept-Encoding cells).
* pinnwand (PyPI, in its own venv, bench/.venv-pinnwand) for HTTP creates and
  reads, with its rate limits raised, on a temp SQLite file.

The clients: a netcat-style raw TCP client (send, half-close, read the URL
line) and an HTTP create client, both asyncio in several processes so that
the client is not one Python process at 100 %; wrk for GETs. Every 20th
returned URL is fetched back and compared byte for byte; a wrong or missing
paste is a failure, never a success. On 2 cores the clients and the server
share the CPU: that holds for every server alike, and the table also shows
the server's own CPU time per paste.

Every ncpaste process of a run (servers, the bulk loader, `ncpaste sweep`)
runs a copy of src/ taken when the run starts (``--no-snapshot`` to run the
tree as it is at each start), so an edit made during a ten-minute run cannot
mix two versions of the server in one table.

Every process started here (servers in their own process groups, client
processes, wrk) is ended on exit, on Ctrl-C and on an exception. fiche has no
listen-address flag and binds every address; all traffic still goes to
127.0.0.1.
``--quick`` exits 1 when any ncpaste cell failed or a cell could not run; it
never asserts on a timing.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime as dt
import gzip
import http.client
import json
import math
import multiprocessing
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PINNWAND_VENV = BENCH_DIR / ".venv-pinnwand"
HOST = "127.0.0.1"  # loopback only: no traffic ever leaves this machine
KiB = 1024
MiB = 1024 * 1024

# Every N-th returned URL of an ingest run is read back and compared.
SAMPLE_EVERY = 20
# One client request may take this long before it counts as failed (a 1 MiB
# paste under 64-way contention on 2 cores takes seconds, not minutes).
REQUEST_TIMEOUT_S = 60.0
# Client processes for concurrent cells: one per core keeps the Python client
# from being the bottleneck without starving the server of its core.
DEFAULT_CLIENT_PROCS = 2
# A growth cell's wrk script picks among at most this many stored keys.
MAX_SCRIPT_KEYS = 50_000
# Keys per LmdbStore.create_batch call when filling a store.
BULK_BATCH = 10_000
# How often the RSS sampler looks at /proc during a burst.
RSS_SAMPLE_S = 0.02
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Realistic CI log text (deterministic for a seed, ASCII, no NUL)
# ---------------------------------------------------------------------------

_MODULES = ["store", "net", "core", "http", "netcat", "ingest", "codec", "limits", "proxy", "redact", "cli", "config"]
_PACKAGES = ["numpy==1.26.4", "requests==2.31.0", "urllib3==2.2.1", "trio==0.25.0", "lmdb==1.4.1",
             "zstandard==0.22.0", "h11==0.14.0", "hypothesis==6.98.2", "pytest==8.1.1", "attrs==23.2.0",
             "idna==3.6", "sniffio==1.3.1", "sortedcontainers==2.4.0", "outcome==1.3.0"]
_STEPS = ["Checkout", "Set up Python 3.11", "Install dependencies", "Lint", "Build wheels", "Run tests",
          "Upload coverage", "Publish artifacts", "Build docker image", "Deploy preview"]
_HOSTS = ["runner-7f3a", "runner-0c91", "gha-ubuntu-22", "build-42.ci.internal"]


def ci_log(size: int, rng: random.Random) -> bytes:
    """``size`` bytes of text that looks like a CI job's log: timestamps,
    levels, paths, numbers, hashes, test ids, compiler lines, tracebacks."""
    t = dt.datetime(2026, 11, 29, 9, 0, 0) + dt.timedelta(seconds=rng.randrange(86400))
    out: list[str] = []
    total = 0
    test_no = 0
    while total < size:
        t += dt.timedelta(milliseconds=rng.randrange(1, 900))
        ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        mod = rng.choice(_MODULES)
        kind = rng.random()
        if kind < 0.30:
            test_no += 1
            outcome = "PASSED" if rng.random() < 0.95 else rng.choice(["FAILED", "SKIPPED", "XFAIL"])
            line = (f"{ts} tests/test_{mod}.py::test_{rng.choice(['create', 'read', 'expire', 'burn', 'alias', 'range'])}"
                    f"_{rng.choice(['basic', 'large', 'unicode', 'concurrent', 'crash'])}[{rng.randrange(1, 65536)}] "
                    f"{outcome} [{min(99, test_no // 7):3d}%] ({rng.random() * 2:.3f}s)")
        elif kind < 0.45:
            level = rng.choice(["INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"])
            line = (f"{ts} {level:<5} {rng.choice(_HOSTS)} ncpaste.{mod}[{rng.randrange(1000, 65000)}]: "
                    f"key={''.join(rng.choice('23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ') for _ in range(12))} "
                    f"size={rng.randrange(1, 10_000_000)} ms={rng.random() * 50:.2f} client=203.0.113.{rng.randrange(1, 255)}")
        elif kind < 0.58:
            src = f"src/ncpaste/{mod}/{rng.choice(['main', 'util', 'io', 'parse', 'buffer', 'state'])}.c"
            line = (f"{ts} gcc -O2 -g -Wall -Wextra -fPIC -I/usr/include/python3.11 -DNDEBUG "
                    f"-c {src} -o build/temp.linux-x86_64-cpython-311/{src.replace('.c', '.o')}")
        elif kind < 0.68:
            pkg = rng.choice(_PACKAGES)
            line = (f"{ts}   Downloading {pkg.replace('==', '-')}-py3-none-any.whl "
                    f"({rng.randrange(10, 20000) / 10:.1f} kB) sha256={rng.getrandbits(128):032x}")
        elif kind < 0.76:
            line = (f"{ts} ##[group]Step {rng.randrange(1, 13)}/12: {rng.choice(_STEPS)} "
                    f"(commit {rng.getrandbits(40):010x}, attempt {rng.randrange(1, 4)})")
        elif kind < 0.84:
            line = (f"{ts}   File \"/home/runner/work/ncpaste/ncpaste/src/ncpaste/{mod}/"
                    f"{rng.choice(['lmdb_store', 'http', 'netcat', 'server', 'pastes'])}.py\", line {rng.randrange(1, 900)}, "
                    f"in {rng.choice(['_write', 'create_batch', 'receive_paste', 'handle_http', '_dispatch'])}")
        elif kind < 0.92:
            line = (f"{ts} [{rng.randrange(1, 400):3d}/{400}] {rng.random() * 100:5.1f}% "
                    f"{rng.randrange(1, 2000)} MB/s eta {rng.randrange(0, 59)}s "
                    f"/tmp/pytest-of-runner/pytest-{rng.randrange(1, 40)}/test_{mod}0/data/data.mdb")
        else:
            line = (f"{ts} WARNING: {rng.choice(['DeprecationWarning', 'ResourceWarning', 'RuntimeWarning'])}: "
                    f"unclosed <socket.socket fd={rng.randrange(3, 1024)}, family=2, type=1, proto=6, "
                    f"laddr=('127.0.0.1', {rng.randrange(32768, 60999)})>")
        out.append(line)
        total += len(line) + 1
    text = ("\n".join(out) + "\n").encode("ascii")
    return text[: size - 1] + b"\n"


def bodies_for(size: int, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed * 1_000_003 + size)
    return [ci_log(size, rng) for _ in range(count)]


# ---------------------------------------------------------------------------
# Processes: everything started is ended
# ---------------------------------------------------------------------------


class Procs:
    """Servers and helpers, each in its own process group, ended at exit."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, cmd: list[str], log_path: Path, *, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=cwd,
            )
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, *, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
        if proc.poll() is None:
            # The leader only: a supervisor stops its own workers gracefully
            # (a group-wide signal would reach them twice).
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Whatever the leader left behind in its group (nginx workers, a
        # forked server worker) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc, grace_s=5.0)
            except Exception:  # keep ending the others
                traceback.print_exc()


PROCS = Procs()
CLIENTS: list[multiprocessing.Process] = []


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def last_line(path: Path) -> str:
    lines = [line for line in tail(path, 5).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "(no output)"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# /proc: memory and CPU of a process tree
# ---------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_of(pids: Iterable[int]) -> tuple[int, int]:
    """Summed RSS and PSS in bytes (PSS splits pages shared between workers)."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def cpu_seconds(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            # utime + stime (all threads) + cutime + cstime (reaped children:
            # a worker restarted mid-run keeps counting through its parent)
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / CLK_TCK


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


class Server:
    name = "server"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.log = tmp / f"{self.name}.log"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def memory(self) -> tuple[int, int]:
        return memory_of(self.pids())

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def _wait_port(self, port: int, timeout_s: float = 60.0) -> float:
        """Seconds from process start until ``port`` accepts a connection."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {code}: {last_line(self.log)}\n{tail(self.log)}")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.002)
        self.stop()
        raise RuntimeError(f"{self.name}: port {port} did not accept within {timeout_s:g} s:\n{tail(self.log)}")

    def _spawn(self, cmd: list[str], **kw: Any) -> None:
        self.started = time.monotonic()
        self.proc = PROCS.start(cmd, self.log, **kw)

    def stop(self) -> None:
        # Our own idle keep-alive connections would hold a graceful shutdown
        # for its whole grace period.
        close_http_conns()
        if self.proc is not None:
            t0 = time.monotonic()
            PROCS.stop(self.proc)
            self.proc = None
            self.stop_s = time.monotonic() - t0


class Ncpaste(Server):
    name = "ncpaste"

    def __init__(self, tmp: Path, data_dir: Path, opts: Options, label: str = "ncpaste") -> None:
        self.name = label
        super().__init__(tmp)
        self.data_dir = data_dir
        self.opts = opts
        self.tcp = free_port()
        self.http = free_port()
        self.url = f"http://{HOST}:{self.http}"

    def start(self) -> dict:
        cmd = [self.opts.python, "-m", "ncpaste", "serve", "--data-dir", str(self.data_dir), "--limits", "off",
               "--log-level", "warning", "--live", "off", "--tcp", f"{HOST}:{self.tcp}",
               "--http", f"{HOST}:{self.http}", "--url", self.url]
        cmd += self.opts.workers_args + self.opts.ncpaste_args
        self._spawn(cmd, cwd=REPO, env=self.opts.env)
        accepts = max(self._wait_port(self.http), self._wait_port(self.tcp))
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = http_get(f"{self.url}/healthz")
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"ncpaste /healthz never answered 200:\n{tail(self.log)}")
            time.sleep(0.002)
        return {"accepts_s": accepts, "healthz_s": time.monotonic() - self.started}


class Fiche(Server):
    def __init__(self, tmp: Path, buffer_bytes: int) -> None:
        self.name = f"fiche-B{buffer_bytes}"
        super().__init__(tmp)
        self.buffer_bytes = buffer_bytes
        self.port = free_port()
        self.out = tmp / f"{self.name}-out"

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        # -s 12: keys as long as ncpaste's, so neither side pays for collisions.
        self._spawn(["fiche", "-d", f"{HOST}:{self.port}", "-p", str(self.port), "-s", "12",
                     "-o", str(self.out), "-B", str(self.buffer_bytes)], cwd=self.tmp)
        self._wait_port(self.port)

    def read(self, url: str) -> bytes:
        slug = url.rstrip("/").rsplit("/", 1)[1]
        return (self.out / slug / "index.txt").read_bytes()


NGINX_CONF = """\
# Generated by bench/bench.py: a static file server tuned the usual way.
user root;                      # the temp root is 0700 and owned by root
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    open_file_cache max=1000 inactive=60s;
    gzip off;
    types {{ }}
    default_type "text/plain; charset=utf-8";
    client_body_temp_path {tmp}/nginx-tmp/body;
    proxy_temp_path {tmp}/nginx-tmp/proxy;
    fastcgi_temp_path {tmp}/nginx-tmp/fastcgi;
    uwsgi_temp_path {tmp}/nginx-tmp/uwsgi;
    scgi_temp_path {tmp}/nginx-tmp/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        root {root};
        # The same gzip bytes as ncpaste sends, precompressed (no on-the-fly gzip).
        location /gz/ {{ gzip_static on; }}
        # The same zstd frame as ncpaste sends; nginx has no zstd module in Debian.
        location /zst/ {{ add_header Content-Encoding zstd; add_header Vary Accept-Encoding; }}
    }}
}}
"""


class Nginx(Server):
    name = "nginx"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.port = free_port()
        self.root = tmp / "nginx-www"
        self.conf = tmp / "nginx.conf"
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        for sub in ("", "gz", "zst"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.tmp / "nginx-tmp").mkdir(exist_ok=True)
        self.conf.write_text(NGINX_CONF.format(tmp=self.tmp, host=HOST, port=self.port, root=self.root))
        self._spawn(["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "nginx-error.log"),
                     "-c", str(self.conf), "-g", "daemon off;"])
        self._wait_port(self.port)

    def put(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{rel}"


PINNWAND_CONF = """\
# Generated by bench/bench.py: pinnwand with its rate limits out of the way.
database_uri = "sqlite:///{db}"
paste_size = {paste_size}     # 1 MiB pastes highlight to more than the 256 KiB default
spamscore = 101               # never refuse a log for its links
[ratelimit.read]
capacity = 1000000000
consume = 1
refill = 1000000000
[ratelimit.create]
capacity = 1000000000
consume = 1
refill = 1000000000
[ratelimit.delete]
capacity = 1000000000
consume = 1
refill = 1000000000
"""


class Pinnwand(Server):
    name = "pinnwand"

    def __init__(self, tmp: Path, python: str, label: str = "pinnwand") -> None:
        self.name = label
        super().__init__(tmp)
        self.python = python
        self.port = free_port()
        self.conf = tmp / f"{label}.toml"
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        db = self.tmp / f"{self.name}.db"
        self.conf.write_text(PINNWAND_CONF.format(db=db, paste_size=64 * MiB))
        # pinnwand_serve.py is `pinnwand http` bound to 127.0.0.1 instead of every address.
        self._spawn([self.python, str(BENCH_DIR / "pinnwand_serve.py"), str(self.conf), HOST, str(self.port)],
                    cwd=self.tmp)
        self._wait_port(self.port)


# ---------------------------------------------------------------------------
# HTTP fetches for verification (http.client, one connection per server)
# ---------------------------------------------------------------------------

_CONNS: dict[tuple[str, int], http.client.HTTPConnection] = {}


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    key = (parts.hostname or HOST, parts.port or 80)
    assert key[0] in ("127.0.0.1", "localhost"), f"refusing to fetch a non-loopback URL: {url}"
    for attempt in range(2):
        conn = _CONNS.get(key)
        if conn is None:
            conn = _CONNS[key] = http.client.HTTPConnection(key[0], key[1], timeout=30)
        try:
            conn.request("GET", parts.path or "/", headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        except (OSError, http.client.HTTPException):
            conn.close()
            _CONNS.pop(key, None)
            if attempt:
                raise
    raise AssertionError("unreachable")


def close_http_conns() -> None:
    for conn in _CONNS.values():
        conn.close()
    _CONNS.clear()


def decode_body(headers: dict[str, str], body: bytes) -> bytes:
    coding = headers.get("content-encoding", "identity")
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "zstd":
        import zstandard  # installed with ncpaste

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


# ---------------------------------------------------------------------------
# Clients: netcat-style and HTTP create, asyncio in several processes
# ---------------------------------------------------------------------------


@dataclass
class ClientSpec:
    op: str  # "nc", "http-ncpaste", "http-pinnwand"
    port: int
    bodies: list[bytes]
    #: Every N-th paste of each connection is read back and compared.
    sample_every: int = SAMPLE_EVERY
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.op == "nc":
            self.requests = self.bodies
        elif self.op == "http-ncpaste":
            # What `curl --data-binary @file HOST/` sends, Connection: close as curl ends.
            self.requests = [
                b"POST / HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (HOST.encode(), self.port, len(body)) + body
                for body in self.bodies
            ]
        elif self.op == "http-pinnwand":
            # What `curl --data-urlencode raw@file -d lexer=text -d expiry=1day HOST/curl` sends.
            self.requests = []
            for body in self.bodies:
                form = urllib.parse.urlencode({"raw": body, "lexer": "text", "expiry": "1day"}).encode()
                self.requests.append(
                    b"POST /curl HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % (HOST.encode(), self.port, len(form)) + form
                )
        else:
            raise ValueError(self.op)


def parse_reply(op: str, reply: bytes) -> str:
    """The paste's URL from a server's answer, or ValueError saying what was wrong."""
    if op == "nc":
        # fiche sends the URL line with a trailing NUL (strlen + 1 bytes): accepted.
        if reply.endswith(b"\n\x00"):
            reply = reply[:-1]
        if not reply.endswith(b"\n") or reply.count(b"\n") != 1 or not reply.startswith(b"http://"):
            raise ValueError(f"reply {reply[:80]!r}")
        return reply[:-1].decode()
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    want = b" 201 " if op == "http-ncpaste" else b" 200 "
    if want not in status + b" ":
        raise ValueError(f"status {status[:40]!r} body {body[:60]!r}")
    if op == "http-ncpaste":
        line = body.split(b"\n", 1)[0]
        if not line.startswith(b"http://"):
            raise ValueError(f"body {body[:80]!r}")
        return line.decode()
    match = re.search(rb"^Raw URL:\s+(\S+)", body, re.M)
    if not match:
        raise ValueError(f"body {body[:80]!r}")
    return match.group(1).decode()


async def _exchange(loop: asyncio.AbstractEventLoop, port: int, payload: bytes, half_close: bool) -> bytes:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (HOST, port))
        await loop.sock_sendall(sock, payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := await loop.sock_recv(sock, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


async def _client_main(spec: ClientSpec, conns: int, base: int, total: int, start_at: float,
                       duration_s: float | None, per_conn: int, once: bool) -> dict:
    loop = asyncio.get_running_loop()
    latencies = array.array("d")
    samples: list[tuple[str, int]] = []
    errors: Counter[str] = Counter()
    counts = {"ok": 0, "failed": 0}
    half_close = spec.op == "nc"
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    deadline = start_at + (duration_s or 0.0)

    async def one_connection(c: int) -> None:
        n = 0
        while (time.monotonic() < deadline) if duration_s is not None else (n < per_conn):
            # Timed runs cycle through the bodies; counted runs stride over
            # them, so that with ``once`` every body is sent exactly once.
            if duration_s is not None:
                idx = (base * 1009 + c * 7 + n) % len(spec.requests)
            else:
                idx = base + c + n * total
                if once and idx >= len(spec.requests):
                    break
                idx %= len(spec.requests)
            started = time.monotonic()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    reply = await _exchange(loop, spec.port, spec.requests[idx], half_close)
                url = parse_reply(spec.op, reply)
            except Exception as exc:  # every failure is counted, by kind
                counts["failed"] += 1
                errors[f"{type(exc).__name__}: {str(exc)[:100]}"] += 1
            else:
                latencies.append(time.monotonic() - started)
                counts["ok"] += 1
                if n % spec.sample_every == 0:
                    samples.append((url, idx))
            n += 1

    began = time.monotonic()
    cpu0 = time.process_time()
    await asyncio.gather(*(one_connection(c) for c in range(conns)))
    return {"cpu_s": time.process_time() - cpu0, "ok": counts["ok"], "failed": counts["failed"],
            "errors": dict(errors), "samples": samples, "latencies": latencies.tobytes(),
            "began": began, "ended": time.monotonic()}


def _client_process(spec: ClientSpec, conns: int, base: int, total: int, start_at: float,
                    duration_s: float | None, per_conn: int, once: bool, pipe: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        result = asyncio.run(_client_main(spec, conns, base, total, start_at, duration_s, per_conn, once))
    except BaseException as exc:
        result = {"crash": f"{type(exc).__name__}: {exc}"}
    pipe.send(result)
    pipe.close()


def run_clients(spec: ClientSpec, concurrency: int, *, procs: int, duration_s: float | None = None,
                per_conn: int = 1, once: bool = False, on_tick: Callable[[], None] | None = None) -> dict:
    """Drive one server with ``concurrency`` connections spread over
    ``procs`` processes, for ``duration_s`` or ``per_conn`` requests each
    (with ``once``: every body exactly once, then stop)."""
    ctx = multiprocessing.get_context("fork")
    nprocs = max(1, min(procs, concurrency))
    share = [concurrency // nprocs + (1 if i < concurrency % nprocs else 0) for i in range(nprocs)]
    start_at = time.monotonic() + 0.3
    workers, pipes = [], []
    try:
        for i, conns in enumerate(share):
            receiver, sender = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_client_process, daemon=True,
                               args=(spec, conns, sum(share[:i]), concurrency, start_at, duration_s,
                                     per_conn, once, sender))
            proc.start()
            sender.close()
            CLIENTS.append(proc)
            workers.append(proc)
            pipes.append(receiver)
        limit = time.monotonic() + (duration_s or 0) + REQUEST_TIMEOUT_S + 60
        results = []
        for receiver in pipes:
            while not receiver.poll(RSS_SAMPLE_S if on_tick else 0.5):
                if on_tick:
                    on_tick()
                if time.monotonic() > limit:
                    raise RuntimeError("client processes did not finish in time")
            results.append(receiver.recv())
    finally:
        for proc in workers:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            CLIENTS.remove(proc)
    crashes = [r["crash"] for r in results if "crash" in r]
    if crashes:
        raise RuntimeError(f"client process crashed: {crashes[0]}")
    latencies = array.array("d")
    errors: Counter[str] = Counter()
    for r in results:
        latencies.frombytes(r["latencies"])
        errors.update(r["errors"])
    ok = sum(r["ok"] for r in results)
    elapsed = max(r["ended"] for r in results) - start_at
    lat = sorted(latencies)
    return {
        # Share of one core the client processes used on average (100 = one core busy).
        "client_cpu_pct": 100 * sum(r["cpu_s"] for r in results) / elapsed if elapsed > 0 else None,
        "ok": ok,
        "failed": sum(r["failed"] for r in results),
        "errors": dict(errors.most_common(5)),
        "elapsed_s": elapsed,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(lat, 50) * 1000 if lat else None,
        "p99_ms": percentile(lat, 99) * 1000 if lat else None,
        "samples": [s for r in results for s in r["samples"]],
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * pct / 100
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def verify_samples(result: dict, bodies: list[bytes], read: Callable[[str], bytes]) -> None:
    """Fetch each sampled URL back; a wrong or unreadable paste moves from ok to failed."""
    wrong = 0
    samples = result.pop("samples")
    for url, idx in samples:
        try:
            got = read(url)
        except Exception as exc:
            got = f"{type(exc).__name__}: {exc}".encode()
        if got != bodies[idx]:
            wrong += 1
            if wrong <= 3:
                result["errors"][f"wrong paste at {url}: {len(got)} bytes, {got[:60]!r}"] = 1
    result["verified"] = len(samples)
    result["wrong"] = wrong
    result["failed"] += wrong
    result["ok"] -= wrong


def read_http(url: str) -> bytes:
    status, _, body = http_get(url)
    if status != 200:
        raise RuntimeError(f"GET {url} answered {status}")
    return body


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(out: str) -> dict:
    result: dict[str, Any] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rate"] = float(match.group(1)) if match else None
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    result["requests"] = int(match.group(1)) if match else 0
    result["elapsed_s"] = float(match.group(2)) * _UNITS[match.group(3)] / 1000 if match else None
    errors = {}
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), match.groups()) if int(v)}
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match:
        errors["non-2xx"] = int(match.group(1))
    result["errors"] = errors
    result["failed"] = sum(errors.values())
    result["ok"] = max(0, result["requests"] - result.get("failed", 0))
    if result["rate"] is None:
        raise RuntimeError(f"wrk printed no result:\n{out[-500:]}")
    return result


def wrk_cmd(url: str, seconds: int, *, conns: int = 64, headers: Iterable[str] = (), script: Path | None = None) -> list[str]:
    assert urllib.parse.urlsplit(url).hostname == HOST
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    return cmd + [url]


def run_wrk(url: str, seconds: int, **kw: Any) -> dict:
    proc = subprocess.run(wrk_cmd(url, seconds, **kw), capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return parse_wrk(proc.stdout)


def wrk_script(tmp: Path, name: str, paths: list[str]) -> Path:
    """A wrk script that GETs a random path of ``paths`` on each request."""
    script = tmp / f"{name}.lua"
    listed = ",\n".join(json.dumps(p) for p in paths)
    script.write_text(
        "local paths = {\n" + listed + "\n}\n"
        "local n = #paths\n"
        "function init(args) math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0)) end\n"
        "function request() return wrk.format('GET', paths[math.random(n)]) end\n"
    )
    return script


# ---------------------------------------------------------------------------
# Bulk loading a store directly (run in a child process: LMDB allows one
# environment per process, and the server may have it open meanwhile)
# ---------------------------------------------------------------------------

BULK_BODY_SIZE = 1 * KiB
BULK_DISTINCT_BODIES = 64


def bulk_bodies(seed: int) -> list[bytes]:
    return bodies_for(BULK_BODY_SIZE, BULK_DISTINCT_BODIES, seed)


def bulk_load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.py _bulkload")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--expire-s", type=int, required=True)
    parser.add_argument("--keys-out", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=MAX_SCRIPT_KEYS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from ncpaste.core import keys
    from ncpaste.store import Created, NewPaste
    from ncpaste.store.lmdb_store import LmdbStore
    from ncpaste.store.records import pack

    rng = random.Random(args.seed)
    # Keys from a seeded PRNG: the loader's speed is not the server's.
    alphabet = keys.KEY_ALPHABET
    fast_key = lambda length: "".join(rng.choices(alphabet, k=length))  # noqa: E731
    bodies = bulk_bodies(args.seed)
    # Packed once by the store's own records; each is then stored under many keys.
    token_hash = keys.token_hash("bench-token")
    frames = [pack(NewPaste(b, token_hash, args.expire_s)) for b in bodies]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    store = LmdbStore(args.data_dir, new_key=fast_key)
    started = time.monotonic()
    sample: list[tuple[str, int]] = []
    seen = 0
    try:
        done = 0
        while done < args.count:
            n = min(BULK_BATCH, args.count - done)
            idxs = [(done + i) % len(frames) for i in range(n)]
            items = [frames[i] for i in idxs]
            results = store.create_batch(items, time.time_ns() // 1_000_000)
            for idx, created in zip(idxs, results):
                if not isinstance(created, Created):
                    raise SystemExit(f"bulk load: create_batch refused a paste: {created!r}")
                # Reservoir sample: keys spread evenly over the whole store.
                seen += 1
                if len(sample) < args.sample:
                    sample.append((created.key, idx))
                else:
                    j = rng.randrange(seen)
                    if j < args.sample:
                        sample[j] = (created.key, idx)
            done += n
    finally:
        store.close()
    args.keys_out.write_text("\n".join(f"{k} {i}" for k, i in sample) + "\n")
    print(json.dumps({"count": args.count, "seconds": time.monotonic() - started}))


def bulk_load(opts: Options, data_dir: Path, count: int, expire_s: int, keys_out: Path, seed: int) -> dict:
    cmd = [opts.python, str(Path(__file__).resolve()), "_bulkload", "--data-dir", str(data_dir),
           "--count", str(count), "--expire-s", str(expire_s), "--keys-out", str(keys_out), "--seed", str(seed)]
    log = data_dir.parent / f"bulkload-{data_dir.name}.log"
    proc = PROCS.start(cmd, log, cwd=REPO, env=opts.env)
    try:
        code = proc.wait()
    finally:
        PROCS.stop(proc)
    if code != 0:
        raise RuntimeError(f"bulk load failed ({code}):\n{tail(log)}")
    return json.loads(log.read_text().strip().splitlines()[-1])


def read_keys(path: Path) -> list[tuple[str, int]]:
    return [(k, int(i)) for k, i in (line.split() for line in path.read_text().splitlines() if line)]


# ---------------------------------------------------------------------------
# Results: one row per figure, a value per round for each side
# ---------------------------------------------------------------------------


class Skipped(Exception):
    """A cell that cannot run here (a tool is missing): reported, not an error."""


@dataclass
class Row:
    cell: str
    unit: str  # "/s", "ms", "s", "MiB", "x"
    better: str  # "higher" or "lower"
    reference: str
    left: dict[int, float] = field(default_factory=dict)
    right: dict[int, float] = field(default_factory=dict)
    fails_left: int = 0
    fails_right: int = 0
    skipped: str | None = None  # why the reference side did not run
    skipped_all: str | None = None  # why neither side ran
    errors: dict[int, str] = field(default_factory=dict)  # round -> what went wrong
    left_name: str = "ncpaste"


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.raw: list[dict] = []
        self.errors: list[str] = []

    def row(self, key: str, cell: str, unit: str, better: str, reference: str, left_name: str = "ncpaste") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(cell, unit, better, reference, left_name=left_name)
        return self.rows[key]

    def record(self, **fields: Any) -> None:
        self.raw.append({k: v for k, v in fields.items() if k != "samples"})


def median_range(values: list[float]) -> tuple[float, float, float] | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt_value(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "us":
        return f"{value:,.0f} µs"
    if unit == "x":
        return f"{value:.3f}"
    return f"{value:g}{unit}"


def fmt_figure(values: dict[int, float], unit: str) -> str:
    stats = median_range(list(values.values()))
    if stats is None:
        return "—"
    med, lo, hi = stats
    if len(values) == 1 or lo == hi:
        return fmt_value(med, unit)
    return f"{fmt_value(med, unit)} ({fmt_value(lo, unit)}–{fmt_value(hi, unit)})"


def fmt_ratio(row: Row) -> str:
    ratios = [row.left[r] / row.right[r] for r in row.left if r in row.right and row.right[r]]
    stats = median_range(ratios)
    if stats is None:
        return "—"
    med, lo, hi = stats
    text = f"{med:.2f}" if med >= 0.1 else f"{med:.3f}"
    if len(ratios) > 1:
        text += f" ({lo:.2f}–{hi:.2f})" if lo >= 0.1 else f" ({lo:.3f}–{hi:.3f})"
    return text


def render_table(results: Results) -> str:
    lines = [
        "| cell | ncpaste | reference | ratio ncpaste/ref, median (min–max) | failures (ncpaste / ref) |",
        "|---|---|---|---|---|",
    ]
    for row in results.rows.values():
        arrow = "↑" if row.better == "higher" else "↓"
        cell = f"{row.cell} {arrow}"
        if row.errors and not row.left and not row.right:
            lines.append(f"| {cell} | error: {next(iter(row.errors.values()))} | | | |")
            continue
        if row.skipped_all:
            lines.append(f"| {cell} | skipped: {row.skipped_all} | | | |")
            continue
        left = fmt_figure(row.left, row.unit)
        if row.left_name != "ncpaste":
            left = f"{row.left_name}: {left}"
        if row.skipped:
            right = f"{row.reference}: skipped: {row.skipped}"
        elif row.right:
            right = f"{row.reference}: {fmt_figure(row.right, row.unit)}"
        else:
            right = row.reference or "—"
        fails = f"{row.fails_left} / {row.fails_right}" if row.right else f"{row.fails_left}"
        if row.errors:
            fails += f"; error in round {', '.join(str(r + 1) for r in sorted(row.errors))}"
        lines.append(f"| {cell} | {left} | {right} | {fmt_ratio(row)} | {fails} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    rounds: int
    ingest_s: float
    wrk_s: int
    client_procs: int
    growth_small: int
    growth_large: int
    sweep_count: int
    sweep_live: int
    rss_clients: int
    disk_bytes: int
    python: str
    pinnwand_python: str | None
    pinnwand_venv: Path
    ncpaste_args: list[str]
    workers_args: list[str]
    workers_note: str
    only: set[str]
    keep_tmp: bool
    env: dict[str, str]
    snapshot_note: str


class Bench:
    def __init__(self, opts: Options, tmp: Path) -> None:
        self.opts = opts
        self.tmp = tmp
        self.results = Results()
        self.skip: dict[str, str] = {}
        self.main: Ncpaste | None = None
        self.fiche_small: Fiche | None = None
        self.fiche_large: Fiche | None = None
        self.nginx: Nginx | None = None
        self.pinnwand: Pinnwand | None = None
        self.get_urls: dict[str, str] = {}
        self.get_bodies: dict[str, bytes] = {}
        self.served: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - T0:6.1f}s] {text}", file=sys.stderr, flush=True)

    def want(self, group: str) -> bool:
        return not self.opts.only or group in self.opts.only

    def guarded(self, what: str, fn: Callable[[], None], rows: Iterable[str] = (), rnd: int = 0) -> None:
        """Run one cell; an exception marks its rows as errors instead of ending the run."""
        try:
            fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Skipped as why:
            self.say(f"skipped: {what}: {why}")
            for key in rows:
                if key in self.results.rows:
                    self.results.rows[key].skipped_all = str(why)
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
            self.results.errors.append(f"{what} (round {rnd + 1}): {message}")
            self.say(f"ERROR in {what}: {message}")
            traceback.print_exc(file=sys.stderr)
            for key in rows:
                if key in self.results.rows:
                    self.results.rows[key].errors.setdefault(rnd, message)

    # -- set-up --------------------------------------------------------------

    def start_servers(self) -> None:
        opts = self.opts
        self.main = Ncpaste(self.tmp, self.tmp / "ncpaste-main", opts)
        self.main.start()
        self.say(f"ncpaste on tcp {self.main.tcp}, http {self.main.http}")
        if shutil.which("fiche"):
            self.fiche_small = Fiche(self.tmp, 32 * KiB)
            self.fiche_large = Fiche(self.tmp, 2 * MiB)
            self.fiche_small.start()
            self.fiche_large.start()
        else:
            self.skip["fiche"] = "fiche not installed (apt-get install fiche, or --install)"
        if shutil.which("nginx"):
            self.nginx = Nginx(self.tmp)
            self.nginx.start()
        else:
            self.skip["nginx"] = "nginx not installed (apt-get install nginx, or --install)"
        if not shutil.which("wrk"):
            self.skip["wrk"] = "wrk not installed (apt-get install wrk, or --install)"
        if opts.pinnwand_python:
            try:
                self.pinnwand = Pinnwand(self.tmp, opts.pinnwand_python)
                self.pinnwand.start()
            except Exception as exc:
                self.pinnwand = None
                self.skip["pinnwand"] = f"pinnwand did not start: {str(exc).splitlines()[0][:120]}"
        else:
            self.skip["pinnwand"] = f"pinnwand not installed in {opts.pinnwand_venv} (--install)"
        for what, why in self.skip.items():
            self.say(f"skipped: {what}: {why}")

    # -- ingest cells --------------------------------------------------------

    def ingest_cells(self) -> list[tuple[str, str, int, int, str]]:
        # key, label, body size, concurrency, op
        return [
            ("nc1k1", "nc ingest 1 KiB ×1", KiB, 1, "nc"),
            ("nc1k32", "nc ingest 1 KiB ×32", KiB, 32, "nc"),
            ("nc1m4", "nc ingest 1 MiB ×4", MiB, 4, "nc"),
            ("http1k32", "HTTP create 1 KiB ×32", KiB, 32, "http"),
        ]

    def ingest_round(self, rnd: int) -> None:
        for key, label, size, conc, op in self.ingest_cells():
            bodies = bodies_for(size, 16 if size <= 64 * KiB else 8, seed=rnd + 1)
            if op == "nc":
                ref_name = "fiche"
                ref_server = self.fiche_small if size <= 32 * KiB else self.fiche_large
                ref_label = f"fiche -B {ref_server.buffer_bytes}" if ref_server else "fiche"
            else:
                ref_name, ref_server, ref_label = "pinnwand", self.pinnwand, "pinnwand /curl"
            rows = [self.results.row(f"{key}.rate", f"{label}, pastes/s", "/s", "higher", ref_label),
                    self.results.row(f"{key}.p99", f"{label}, p99 latency", "ms", "lower", ref_label),
                    self.results.row(f"{key}.cpu", f"{label}, server CPU per paste", "us", "lower", ref_label)]
            sides: list[tuple[str, Any]] = [("ncpaste", self.main)]
            if ref_server is not None:
                sides.append((ref_name, ref_server))
            else:
                for row in rows:
                    row.skipped = self.skip.get(ref_name, "not available")
            if rnd % 2:
                sides.reverse()

            def run() -> None:
                for side, server in sides:
                    if side == "ncpaste":
                        spec = ClientSpec("nc" if op == "nc" else "http-ncpaste", server.tcp if op == "nc" else server.http, bodies)
                        reader = read_http
                    elif side == "fiche":
                        spec = ClientSpec("nc", server.port, bodies)
                        reader = server.read
                    else:
                        spec = ClientSpec("http-pinnwand", server.port, bodies)
                        reader = read_http
                    cpu0 = server.cpu()
                    result = run_clients(spec, conc, procs=self.opts.client_procs, duration_s=self.opts.ingest_s)
                    cpu = server.cpu() - cpu0
                    verify_samples(result, bodies, reader)
                    result["cpu_us_per_paste"] = cpu / max(1, result["ok"]) * 1e6
                    result["rate"] = result["ok"] / result["elapsed_s"]
                    self.results.record(cell=key, server=side, round=rnd, **result)
                    self.say(f"  {label:<24} {side:<9} {result['rate']:>9,.0f}/s  p99 {result['p99_ms'] or 0:7.2f} ms  "
                             f"cpu {result['cpu_us_per_paste']:6.0f} µs/paste  client cpu {result['client_cpu_pct']:3.0f}%  "
                             f"ok {result['ok']} failed {result['failed']}"
                             + (f"  {result['errors']}" if result["errors"] else ""))
                    left = side == "ncpaste"
                    for row, value in zip(rows, (result["rate"], result["p99_ms"], result["cpu_us_per_paste"])):
                        (row.left if left else row.right)[rnd] = value
                        if left:
                            row.fails_left += result["failed"]
                        else:
                            row.fails_right += result["failed"]

            self.guarded(label, run, [f"{key}.rate", f"{key}.p99", f"{key}.cpu"], rnd=rnd)

    # -- GET cells -----------------------------------------------------------

    def prepare_gets(self) -> None:
        """The same bytes on every server: a paste on ncpaste and pinnwand,
        a static file on nginx (and its gzip/zstd forms as ncpaste sends them)."""
        assert self.main is not None
        for size, name in ((KiB, "1k"), (100 * KiB, "100k")):
            body = bodies_for(size, 1, seed=99)[0]
            spec = ClientSpec("nc", self.main.tcp, [body])
            url = parse_reply("nc", asyncio.run(_exchange_once(spec)))
            self.get_urls[f"ncpaste.{name}"] = url
            self.get_bodies[name] = body
            if read_http(url) != body:
                raise RuntimeError(f"ncpaste GET {url} does not give back the pasted bytes")
            encoded: dict[str, bytes] = {}
            for coding in ("zstd", "gzip"):
                status, headers, got = http_get(url, {"Accept-Encoding": coding})
                served = headers.get("content-encoding", "identity")
                self.served[f"{name}.{coding}"] = served
                if status != 200 or decode_body(headers, got) != body:
                    raise RuntimeError(f"ncpaste GET {url} with Accept-Encoding: {coding} gave wrong bytes")
                encoded[coding] = got if served == coding else (
                    gzip.compress(body, 6, mtime=0) if coding == "gzip" else _zstd(body))
            if self.nginx:
                self.get_urls[f"nginx.{name}"] = self.nginx.put(f"p{name}.txt", body)
                self.nginx.put(f"gz/p{name}.txt", body)
                self.nginx.put(f"gz/p{name}.txt.gz", encoded["gzip"])
                self.get_urls[f"nginx.{name}.gzip"] = f"{self.nginx.url}/gz/p{name}.txt"
                self.get_urls[f"nginx.{name}.zstd"] = self.nginx.put(f"zst/p{name}.txt", encoded["zstd"])
                for variant, header in (("", None), (".gzip", "gzip"), (".zstd", "zstd")):
                    status, headers, got = http_get(self.get_urls[f"nginx.{name}{variant}"],
                                                    {"Accept-Encoding": header} if header else None)
                    if status != 200 or decode_body(headers, got) != body:
                        raise RuntimeError(f"nginx {name}{variant} does not serve the same bytes")
            if self.pinnwand:
                spec = ClientSpec("http-pinnwand", self.pinnwand.port, [body])
                url = parse_reply("http-pinnwand", asyncio.run(_exchange_once(spec)))
                if read_http(url) != body:
                    raise RuntimeError(f"pinnwand {url} does not give back the pasted bytes")
                self.get_urls[f"pinnwand.{name}"] = url

    def get_round(self, rnd: int) -> None:
        if "wrk" in self.skip:
            for key, label in (("get1k", "GET 1 KiB ×64"), ("get100k", "GET 100 KiB ×64")):
                row = self.results.row(f"{key}.rate", f"{label}, req/s", "/s", "higher", "nginx")
                row.skipped_all = self.skip["wrk"]
            return
        secs = self.opts.wrk_s
        for name, label in (("1k", "GET 1 KiB ×64"), ("100k", "GET 100 KiB ×64")):
            body = self.get_bodies[name]
            for coding in (None, "zstd", "gzip"):
                suffix = f" (Accept-Encoding: {coding})" if coding else ""
                served = self.served.get(f"{name}.{coding}") if coding else None
                if coding and served != coding:
                    suffix += f" [ncpaste served {served}]"
                refs = [("nginx", self.nginx and self.get_urls.get(f"nginx.{name}" + (f".{coding}" if coding else "")))]
                if coding is None:
                    refs.append(("pinnwand", self.pinnwand and self.get_urls.get(f"pinnwand.{name}")))
                headers = [f"Accept-Encoding: {coding}"] if coding else []
                key = f"get{name}{'.' + coding if coding else ''}"

                def run(name: str = name, key: str = key, label: str = label, suffix: str = suffix,
                        refs: list = refs, headers: list = headers, coding: str | None = coding) -> None:
                    measured: dict[str, dict] = {}
                    order = [("ncpaste", self.get_urls[f"ncpaste.{name}"])] + [(n, u) for n, u in refs if u]
                    if rnd % 2:
                        order.reverse()
                    for side, url in order:
                        result = run_wrk(url, secs, headers=headers)
                        status, resp_headers, got = http_get(url, {"Accept-Encoding": coding} if coding else None)
                        if status != 200 or decode_body(resp_headers, got) != body:
                            result["failed"] += 1
                            result["errors"]["wrong bytes after the run"] = 1
                        measured[side] = result
                        self.results.record(cell=key, server=side, round=rnd, url=url, **result)
                        self.say(f"  {label + suffix:<48} {side:<9} {result['rate']:>9,.0f}/s  "
                                 f"p50 {result.get('p50_ms', 0):6.2f} ms  p99 {result.get('p99_ms', 0):7.2f} ms"
                                 + (f"  errors {result['errors']}" if result["errors"] else ""))
                    for ref, _url in refs:
                        rows = [self.results.row(f"{key}.{ref}.rate", f"{label}{suffix}, req/s", "/s", "higher", ref),
                                self.results.row(f"{key}.{ref}.p99", f"{label}{suffix}, p99 latency", "ms", "lower", ref)]
                        for row, metric in zip(rows, ("rate", "p99_ms")):
                            row.left[rnd] = measured["ncpaste"][metric]
                            row.fails_left += measured["ncpaste"]["failed"]
                            if ref in measured:
                                row.right[rnd] = measured[ref][metric]
                                row.fails_right += measured[ref]["failed"]
                            else:
                                row.skipped = self.skip.get(ref, "not available")

                self.guarded(label + suffix, run, [f"{key}.{r}.{m}" for r, _ in refs for m in ("rate", "p99")], rnd=rnd)

    # -- growth cells --------------------------------------------------------

    def prepare_growth(self) -> None:
        self.growth: dict[str, dict] = {}
        for label, count in (("small", self.opts.growth_small), ("large", self.opts.growth_large)):
            data = self.tmp / f"growth-{label}"
            keys_file = self.tmp / f"growth-{label}.keys"
            info = bulk_load(self.opts, data, count, 30 * 86400, keys_file, seed=7)
            keys = read_keys(keys_file)
            script = wrk_script(self.tmp, f"growth-{label}", [f"/{k}" for k, _ in keys])
            self.growth[label] = {"count": count, "dir": data, "keys": keys, "script": script, "load": info}
            self.say(f"bulk-loaded {count:,} pastes in {info['seconds']:.1f} s "
                     f"({count / info['seconds']:,.0f}/s, create_batch ×{BULK_BATCH:,})")
            self.results.record(cell="growth.bulkload", server="ncpaste", store=label, pastes=count, seconds=info["seconds"])

    def growth_round(self, rnd: int) -> None:
        small, large = self.growth["small"], self.growth["large"]
        label = f"{large['count']:,} vs {small['count']:,} stored"
        ref = f"{small['count']:,} stored"
        left = f"{large['count']:,} stored"
        rows = {
            "accepts_s": self.results.row("growth.accepts", f"start-up until the port accepts, {label}", "s", "lower", ref, left),
            "healthz_s": self.results.row("growth.healthz", f"start-up until /healthz answers, {label}", "s", "lower", ref, left),
            "rate": self.results.row("growth.rate", f"GET 1 KiB random key ×64, {label}, req/s", "/s", "higher", ref, left),
            "p50_ms": self.results.row("growth.p50", f"GET 1 KiB random key ×64, {label}, p50", "ms", "lower", ref, left),
            "p99_ms": self.results.row("growth.p99", f"GET 1 KiB random key ×64, {label}, p99", "ms", "lower", ref, left),
        }
        bodies = bulk_bodies(7)

        def run() -> None:
            if "wrk" in self.skip:
                raise Skipped(self.skip["wrk"])
            order = ["small", "large"] if rnd % 2 == 0 else ["large", "small"]
            for which in order:
                g = self.growth[which]
                server = Ncpaste(self.tmp, g["dir"], self.opts, label=f"ncpaste-growth-{which}")
                try:
                    result = server.start()
                    wrong = 0
                    for k, idx in random.Random(rnd).sample(g["keys"], min(20, len(g["keys"]))):
                        try:
                            if read_http(f"{server.url}/{k}") != bodies[idx]:
                                wrong += 1
                        except Exception:
                            wrong += 1
                    result.update(run_wrk(server.url, self.opts.wrk_s, script=g["script"]))
                    result["failed"] += wrong
                finally:
                    server.stop()
                    close_http_conns()
                self.results.record(cell="growth", server="ncpaste", store=which, count=g["count"], round=rnd, **result)
                self.say(f"  growth {which:<5} {g['count']:>10,} stored: accepts {result['accepts_s'] * 1000:6.0f} ms, "
                         f"/healthz {result['healthz_s'] * 1000:6.0f} ms, {result['rate']:>8,.0f}/s, "
                         f"p50 {result.get('p50_ms', 0):.2f} ms, p99 {result.get('p99_ms', 0):.2f} ms"
                         + (f"  errors {result['errors']}" if result["errors"] else ""))
                for metric, row in rows.items():
                    if which == "large":
                        row.left[rnd] = result.get(metric)
                        row.fails_left += result["failed"]
                    else:
                        row.right[rnd] = result.get(metric)
                        row.fails_right += result["failed"]

        self.guarded("growth", run, [f"growth.{m}" for m in ("accepts", "healthz", "rate", "p50", "p99")], rnd=rnd)

    # -- memory --------------------------------------------------------------

    def rss_round(self, rnd: int) -> None:
        n = self.opts.rss_clients
        label = f"{n} clients uploading 1 MiB at once"
        bodies = bodies_for(MiB, 8, seed=50 + rnd)
        refs = []
        if self.opts.pinnwand_python and "pinnwand" not in self.skip:
            refs.append("pinnwand")
        if shutil.which("fiche"):
            refs.append("fiche")
        sides = ["ncpaste"] + refs
        if rnd % 2:
            sides.reverse()
        rows: dict[tuple[str, str], Row] = {}
        for ref in ("pinnwand", "fiche"):
            ref_label = "fiche -B 2097152" if ref == "fiche" else "pinnwand"
            for metric, what in (("idle", "RSS idle (fresh server)"), ("peak", f"RSS peak, {label}"),
                                 ("after", "RSS after the uploads")):
                row = rows[(ref, metric)] = self.results.row(f"rss.{metric}.{ref}", f"{what}, sum over processes", "MiB", "lower", ref_label)
                if ref not in refs:
                    row.skipped = self.skip.get(ref, "not available")

        def run() -> None:
            measured: dict[str, dict] = {}
            for side in sides:
                server: Any
                if side == "ncpaste":
                    server = Ncpaste(self.tmp, self.tmp / f"ncpaste-rss-{rnd}", self.opts, label=f"ncpaste-rss-{rnd}")
                    server.start()
                    spec, reader = ClientSpec("nc", server.tcp, bodies, sample_every=1), read_http
                elif side == "fiche":
                    server = Fiche(self.tmp, 2 * MiB)
                    server.name = f"fiche-rss-{rnd}"
                    server.out = self.tmp / f"fiche-rss-{rnd}-out"
                    server.start()
                    spec, reader = ClientSpec("nc", server.port, bodies, sample_every=1), server.read
                else:
                    server = Pinnwand(self.tmp, self.opts.pinnwand_python, label=f"pinnwand-rss-{rnd}")
                    server.start()
                    spec, reader = ClientSpec("http-pinnwand", server.port, bodies, sample_every=1), read_http
                try:
                    time.sleep(0.5)
                    idle = server.memory()
                    peak = list(idle)

                    def sample() -> None:
                        rss, pss = server.memory()
                        peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

                    result = run_clients(spec, n, procs=self.opts.client_procs, per_conn=1, on_tick=sample)
                    sample()
                    time.sleep(1.0)
                    after = server.memory()
                    # Every upload of this cell is read back, not only every 20th.
                    verify_samples(result, bodies, reader)
                finally:
                    server.stop()
                    close_http_conns()
                figures = {"idle": idle[0] / MiB, "peak": peak[0] / MiB, "after": after[0] / MiB,
                           "idle_pss": idle[1] / MiB, "peak_pss": peak[1] / MiB, "after_pss": after[1] / MiB}
                measured[side] = {**figures, "failed": result["failed"], "ok": result["ok"]}
                self.results.record(cell="rss", server=side, round=rnd, **figures, ok=result["ok"], failed=result["failed"],
                                    errors=result["errors"], elapsed_s=result["elapsed_s"])
                self.say(f"  RSS {side:<9} idle {figures['idle']:6.1f} MiB, peak {figures['peak']:7.1f} MiB "
                         f"(PSS {figures['peak_pss']:.1f}), after {figures['after']:6.1f} MiB; {result['ok']} uploads "
                         f"in {result['elapsed_s']:.1f} s, failed {result['failed']}"
                         + (f"  {result['errors']}" if result["errors"] else ""))
            for (ref, metric), row in rows.items():
                row.left[rnd] = measured["ncpaste"][metric]
                row.fails_left += measured["ncpaste"]["failed"]
                if ref in measured:
                    row.right[rnd] = measured[ref][metric]
                    row.fails_right += measured[ref]["failed"]

        self.guarded("rss", run, [f"rss.{m}.{r}" for m in ("idle", "peak", "after") for r in ("pinnwand", "fiche")], rnd=rnd)

    # -- disk ----------------------------------------------------------------

    def disk_cell(self) -> None:
        row = self.results.row("disk", "disk used / payload, CI log text", "x", "lower", "fiche -B 2097152")
        row_abs = self.results.row("disk.mib", "disk used for the same pastes", "MiB", "lower", "fiche -B 2097152")

        def run() -> None:
            rng = random.Random(2026)
            corpus: list[bytes] = []
            total = 0
            while total < self.opts.disk_bytes:
                # Log-uniform sizes from 2 KiB to 1 MiB: many short jobs, a few long ones.
                size = int(math.exp(rng.uniform(math.log(2 * KiB), math.log(MiB))))
                corpus.append(ci_log(size, rng))
                total += size
            self.say(f"disk: {len(corpus)} pastes, {total / MiB:.1f} MiB of log text")
            data = self.tmp / "ncpaste-disk"
            server = Ncpaste(self.tmp, data, self.opts, label="ncpaste-disk")
            server.start()
            try:
                # Each of 4 connections sends a quarter of the corpus; every paste is read back.
                result = run_clients(ClientSpec("nc", server.tcp, corpus, sample_every=1), 4, procs=1,
                                     per_conn=math.ceil(len(corpus) / 4), once=True)
                verify_samples(result, corpus, read_http)
            finally:
                server.stop()
                close_http_conns()
            disk_n = du(data)
            payload = sum(len(b) for b in corpus)
            stats = subprocess.run([self.opts.python, "-m", "ncpaste", "stats", "--json", "--data-dir", str(data)],
                                   capture_output=True, text=True, cwd=REPO, env=self.opts.env)
            self.results.record(cell="disk", server="ncpaste", disk_bytes=disk_n, payload_bytes=payload,
                                pastes=len(corpus), ok=result["ok"], failed=result["failed"],
                                stats=stats.stdout.strip() if stats.returncode == 0 else stats.stderr.strip()[-300:])
            row.left[0] = disk_n / payload
            row_abs.left[0] = disk_n / MiB
            row.fails_left += result["failed"] + (len(corpus) - result["ok"] - result["failed"])
            row_abs.fails_left = row.fails_left
            self.say(f"  disk ncpaste: {disk_n / MiB:.1f} MiB for {payload / MiB:.1f} MiB ({disk_n / payload:.3f})")
            if not shutil.which("fiche"):
                row.skipped = row_abs.skipped = self.skip.get("fiche", "not available")
                return
            fiche = Fiche(self.tmp, 2 * MiB)
            fiche.name, fiche.out = "fiche-disk", self.tmp / "fiche-disk-out"
            fiche.start()
            try:
                result = run_clients(ClientSpec("nc", fiche.port, corpus, sample_every=1), 4, procs=1,
                                     per_conn=math.ceil(len(corpus) / 4), once=True)
                verify_samples(result, corpus, fiche.read)
            finally:
                fiche.stop()
            disk_f = du(fiche.out)
            self.results.record(cell="disk", server="fiche", disk_bytes=disk_f, payload_bytes=payload,
                                pastes=len(corpus), ok=result["ok"], failed=result["failed"])
            row.right[0] = disk_f / payload
            row_abs.right[0] = disk_f / MiB
            row.fails_right += result["failed"]
            row_abs.fails_right = row.fails_right
            self.say(f"  disk fiche:   {disk_f / MiB:.1f} MiB for {payload / MiB:.1f} MiB ({disk_f / payload:.3f}); fiche does not fsync")

        self.guarded("disk", run, ["disk", "disk.mib"])

    # -- sweep ---------------------------------------------------------------

    def sweep_round(self, rnd: int) -> None:
        n = self.opts.sweep_count
        rows = {
            "sweep_s": self.results.row("sweep.time", f"sweep of {n:,} expired pastes: wall time of `ncpaste sweep` beside the running server", "s", "lower", ""),
            "rate": self.results.row("sweep.rate", "GET 1 KiB random key ×64 during the sweep vs before, req/s", "/s", "higher", "before the sweep", "during"),
            "p99_ms": self.results.row("sweep.p99", "GET 1 KiB random key ×64 during the sweep vs before, p99", "ms", "lower", "before the sweep", "during"),
        }

        def run() -> None:
            if "wrk" in self.skip:
                raise Skipped(self.skip["wrk"])
            data = self.tmp / f"ncpaste-sweep-{rnd}"
            keys_file = self.tmp / f"sweep-{rnd}.keys"
            bulk_load(self.opts, data, self.opts.sweep_live, 30 * 86400, keys_file, seed=11)
            script = wrk_script(self.tmp, f"sweep-{rnd}", [f"/{k}" for k, _ in read_keys(keys_file)])
            server = Ncpaste(self.tmp, data, self.opts, label=f"ncpaste-sweep-{rnd}")
            server.start()  # its own first sweep runs now, before the expired pastes exist
            started = time.monotonic()
            try:
                load = bulk_load(self.opts, data, n, 1, self.tmp / f"sweep-{rnd}-expired.keys", seed=12)
                time.sleep(2.0)  # expire_s=1 on the wall clock: all of them are past it now
                before = run_wrk(server.url, self.opts.wrk_s, script=script)
                wrk_log = self.tmp / f"sweep-{rnd}-wrk.log"
                wrk = PROCS.start(wrk_cmd(server.url, 120, script=script), wrk_log)
                try:
                    time.sleep(0.5)
                    t0 = time.monotonic()
                    sweep = subprocess.run([self.opts.python, "-m", "ncpaste", "sweep", "-q", "--data-dir", str(data)],
                                           capture_output=True, text=True, cwd=REPO, env=self.opts.env,
                                           timeout=600)
                    sweep_s = time.monotonic() - t0
                    os.kill(wrk.pid, signal.SIGINT)  # wrk prints its figures on SIGINT
                    wrk.wait(30)
                finally:
                    PROCS.stop(wrk)
                during = parse_wrk(wrk_log.read_text())
                if time.monotonic() - started > 55:
                    self.say("  warning: over 55 s since server start: its own minute sweep may have run")
            finally:
                server.stop()
            removed = re.findall(r"\d[\d,]*", sweep.stdout)
            removed_n = int(removed[0].replace(",", "")) if removed else -1
            failed = 0 if (sweep.returncode == 0 and removed_n == n) else 1
            self.results.record(cell="sweep", server="ncpaste", round=rnd, sweep_s=sweep_s, removed=removed_n,
                                sweep_stdout=sweep.stdout[-300:], sweep_stderr=sweep.stderr[-300:],
                                before=before, during=during, load=load)
            self.say(f"  sweep: {removed_n:,} removed in {sweep_s:.2f} s; GET before {before['rate']:,.0f}/s "
                     f"p99 {before.get('p99_ms', 0):.2f} ms, during {during['rate']:,.0f}/s p99 {during.get('p99_ms', 0):.2f} ms"
                     + ("" if not failed else f"  FAILED: exit {sweep.returncode}, stdout {sweep.stdout[-200:]!r} {sweep.stderr[-200:]!r}"))
            rows["sweep_s"].left[rnd] = sweep_s
            rows["sweep_s"].fails_left += failed
            for metric in ("rate", "p99_ms"):
                rows[metric].left[rnd] = during.get(metric)
                rows[metric].right[rnd] = before.get(metric)
                rows[metric].fails_left += during["failed"] + failed
                rows[metric].fails_right += before["failed"]

        self.guarded("sweep", run, ["sweep.time", "sweep.rate", "sweep.p99"], rnd=rnd)


def _zstd(body: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(body)


async def _exchange_once(spec: ClientSpec) -> bytes:
    return await _exchange(asyncio.get_running_loop(), spec.port, spec.requests[0], spec.op == "nc")


def du(path: Path) -> int:
    """Bytes of disk allocated under ``path`` (st_blocks, like du), directories included."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


# ---------------------------------------------------------------------------
# Environment, installation, main
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def tool_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0] if text else "?"


def deb_version(package: str) -> str:
    if not shutil.which(package):
        return "not on PATH"
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "not installed"


def git_describe() -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout.strip() else "")


def install(pinnwand_venv: Path) -> None:
    missing = [p for p, exe in (("nginx", "nginx"), ("fiche", "fiche"), ("wrk", "wrk")) if not shutil.which(exe)]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    if not (pinnwand_venv / "bin" / "python").exists():
        print(f"creating {pinnwand_venv} with pinnwand from PyPI", file=sys.stderr)
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(pinnwand_venv)], check=True)
    probe = subprocess.run([str(pinnwand_venv / "bin" / "python"), "-c", "import pinnwand"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(pinnwand_venv / "bin" / "pip"), "install", "-q", "pinnwand"], check=True)


def serve_help(python: str, env: dict[str, str]) -> str:
    proc = subprocess.run([python, "-m", "ncpaste", "serve", "--help"], capture_output=True, text=True, cwd=REPO,
                          env={**env, "COLUMNS": "200"})
    if proc.returncode != 0:
        raise SystemExit(f"bench: `{python} -m ncpaste serve --help` failed: {proc.stderr.strip()[-300:]}\n"
                         "run the bench with the project's venv: .venv/bin/python bench/bench.py")
    return proc.stdout


def snapshot_src(dest: Path) -> Path:
    """Copy src/ so that every ncpaste process of this run, started now or in
    ten minutes, runs the same code even while someone edits the tree."""
    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def tree_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def parse_args(argv: list[str], snapshot_dir: Path) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(
        description="ncpaste against fiche, nginx and pinnwand on loopback: absolute figures and in-round ratios.",
    )
    parser.add_argument("--quick", action="store_true", help="about a minute: 1 round, short runs, small growth cells")
    parser.add_argument("--rounds", type=int, help="rounds; figures are medians over them (default 5, quick 1)")
    parser.add_argument("--seconds", type=float, help="length of each ingest run (default 4, quick 1)")
    parser.add_argument("--wrk-seconds", type=int, help="length of each wrk run, whole seconds (default 3, quick 1)")
    parser.add_argument("--client-procs", type=int, default=DEFAULT_CLIENT_PROCS, help="client processes per cell (default 2)")
    parser.add_argument("--growth", type=str, help="stored pastes for the growth cells, SMALL,LARGE (default 10000,1000000; quick 1000,20000)")
    parser.add_argument("--sweep-count", type=int, help="expired pastes to sweep (default 100000, quick 5000)")
    parser.add_argument("--rss-clients", type=int, default=64, help="concurrent 1 MiB uploads in the RSS cell (default 64)")
    parser.add_argument("--disk-mib", type=float, help="MiB of log text for the disk cell (default 64, quick 4)")
    parser.add_argument("--workers", help="pass --workers N to ncpaste serve if it has that flag (default: the server's default)")
    parser.add_argument("--ncpaste-args", default="", help="extra arguments for every `ncpaste serve`, one shell-quoted string")
    parser.add_argument("--python", help="python with ncpaste installed (default: this one)")
    parser.add_argument("--pinnwand-venv", type=Path, default=PINNWAND_VENV, help=f"venv with pinnwand (default {PINNWAND_VENV})")
    parser.add_argument("--only", default="", help="comma list of groups: ingest,get,growth,rss,disk,sweep")
    parser.add_argument("--install", action="store_true", help="apt-get install nginx fiche wrk and pip install pinnwand (own venv) if missing")
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data dirs) for a look afterwards")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="run ncpaste from the tree as it is at each start instead of a copy of src/ taken at the start")
    args = parser.parse_args(argv)

    quick = args.quick
    python = args.python or sys.executable
    env = dict(os.environ)
    snapshot_note = "the live tree (--no-snapshot)"
    if not args.no_snapshot:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot_dir), env.get("PYTHONPATH")]))
        snapshot_note = f"a copy of src/ taken at start, sha256 {tree_digest(snapshot_dir)[:12]}"
    help_text = serve_help(python, env)
    workers_args: list[str] = []
    if "--workers" in help_text:
        match = re.search(r"^\s+--workers\b.*?(?=^\s+-|\Z)", help_text, re.M | re.S)
        default = re.search(r"default[:\s]+([^)\]]+)", " ".join(match.group(0).split())) if match else None
        workers_note = f"--workers {args.workers}" if args.workers else f"server default ({default.group(1).strip() if default else 'see --help'})"
        if args.workers:
            workers_args = ["--workers", str(args.workers)]
    else:
        workers_note = "one process (this ncpaste has no --workers flag)"
        if args.workers:
            print("bench: warning: ncpaste serve has no --workers flag; ignoring --workers", file=sys.stderr)
    pinnwand_python = args.pinnwand_venv / "bin" / "python"
    has_pinnwand = pinnwand_python.exists() and subprocess.run(
        [str(pinnwand_python), "-c", "import pinnwand"], capture_output=True).returncode == 0
    small, large = (1_000, 20_000) if quick else (10_000, 1_000_000)
    if args.growth:
        small, large = (int(x.replace("_", "")) for x in args.growth.split(","))
    opts = Options(
        quick=quick,
        rounds=args.rounds or (1 if quick else 5),
        ingest_s=args.seconds or (1.0 if quick else 4.0),
        wrk_s=args.wrk_seconds or (1 if quick else 3),
        client_procs=args.client_procs,
        growth_small=small,
        growth_large=large,
        sweep_count=args.sweep_count or (5_000 if quick else 100_000),
        sweep_live=1_000 if quick else 10_000,
        rss_clients=args.rss_clients,
        disk_bytes=int((args.disk_mib or (4 if quick else 64)) * MiB),
        python=python,
        pinnwand_python=str(pinnwand_python) if has_pinnwand else None,
        pinnwand_venv=args.pinnwand_venv,
        ncpaste_args=shlex.split(args.ncpaste_args),
        workers_args=workers_args,
        workers_note=workers_note,
        only={g.strip() for g in args.only.split(",") if g.strip()},
        keep_tmp=args.keep_tmp,
        env=env,
        snapshot_note=snapshot_note,
    )
    return args, opts


T0 = time.monotonic()


def main(argv: list[str]) -> int:
    if argv[:1] == ["_bulkload"]:
        bulk_load_main(argv[1:])
        return 0
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--install", action="store_true")
    pre.add_argument("--pinnwand-venv", type=Path, default=PINNWAND_VENV)
    known, _ = pre.parse_known_args(argv)
    if known.install:
        install(known.pinnwand_venv)
    tmp = Path(tempfile.mkdtemp(prefix="ncpaste-bench-"))
    try:
        snapshot = snapshot_src(tmp / "src")
        args, opts = parse_args(argv, snapshot)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    started_at = dt.datetime.now(dt.UTC)
    command = f"cd {shlex.quote(str(REPO))} && {shlex.quote(os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable)} bench/bench.py {shlex.join(argv)}".rstrip()
    header = [
        f"date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: nproc {os.cpu_count()}, {cpu_model()}, {os.sysconf('SC_PHYS_PAGES') * PAGE_SIZE / 2**30:.0f} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"ncpaste: {git_describe()}, run from {opts.snapshot_note}; workers: {opts.workers_note}"
        + (f", extra args: {shlex.join(opts.ncpaste_args)}" if opts.ncpaste_args else ""),
        f"references: fiche {deb_version('fiche')}, nginx {deb_version('nginx')}, wrk {deb_version('wrk')}, "
        f"pinnwand {_pinnwand_version(opts.pinnwand_python)}",
        f"rounds: {opts.rounds}, ingest runs {opts.ingest_s:g} s, wrk runs {opts.wrk_s} s "
        f"(wrk -t2 -c64 --latency), {opts.client_procs} client processes; all on 127.0.0.1",
        f"reproduce: {command}",
    ]
    bench = Bench(opts, tmp)
    code = 0
    try:
        bench.say(f"temp dir {tmp}")
        bench.start_servers()
        if bench.want("get"):
            bench.guarded("GET set-up", bench.prepare_gets)
        if bench.want("growth"):
            bench.guarded("growth set-up (bulk load)", bench.prepare_growth)
        for rnd in range(opts.rounds):
            bench.say(f"round {rnd + 1}/{opts.rounds}")
            if bench.want("ingest"):
                bench.ingest_round(rnd)
            if bench.want("get") and bench.get_urls:
                bench.get_round(rnd)
            if bench.want("growth") and len(getattr(bench, "growth", {})) == 2:
                bench.growth_round(rnd)
            if bench.want("rss"):
                bench.rss_round(rnd)
            if bench.want("sweep"):
                bench.sweep_round(rnd)
        if bench.want("disk"):
            bench.disk_cell()
    except KeyboardInterrupt:
        bench.say("interrupted: ending every process started")
        code = 130
    finally:
        for proc in list(CLIENTS):
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        close_http_conns()
        PROCS.stop_all()
        if not opts.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)
    if code:
        return code
    results = bench.results
    table = render_table(results)
    notes = [
        "ratio = ncpaste ÷ reference inside each round; ↑ higher is better, ↓ lower is better.",
        "fiche does not fsync and keeps one file per paste; ncpaste answers after an fsync'd LMDB commit.",
        "growth rows: the ncpaste column is the large store, the reference column the small one (same server).",
        "failures: requests that errored or answered wrongly, plus sampled pastes (every 20th) that did not read back byte for byte.",
    ]
    print("\n".join(header))
    print()
    print(table)
    print()
    for note in notes:
        print(f"- {note}")
    skipped = sorted(set(bench.skip.items()))
    for what, why in skipped:
        print(f"- skipped: {what}: {why}")
    for error in results.errors:
        print(f"- error: {error}")
    ncpaste_failures = sum(row.fails_left for row in results.rows.values())
    ref_failures = sum(row.fails_right for row in results.rows.values())
    if args.json:
        args.json.write_text(json.dumps({
            "header": header, "table": table, "options": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(opts).items()},
            "skipped": dict(bench.skip), "errors": results.errors,
            "rows": {key: {"cell": row.cell, "unit": row.unit, "better": row.better, "reference": row.reference,
                           "left_name": row.left_name, "ncpaste": row.left, "ref": row.right,
                           "failures_ncpaste": row.fails_left, "failures_ref": row.fails_right,
                           "skipped": row.skipped, "skipped_all": row.skipped_all, "errors": row.errors}
                     for key, row in results.rows.items()},
            "raw": results.raw,
        }, indent=1, default=str))
    if results.errors or ncpaste_failures:
        failing_rows = sum(1 for row in results.rows.values() if row.fails_left)
        print(f"\nbench: {len(results.errors)} cell errors; ncpaste failures in {failing_rows} rows", file=sys.stderr)
        return 1
    if ref_failures:
        print(f"\nbench: note: {ref_failures} failures on the reference side (not ncpaste's)", file=sys.stderr)
    return 0


def _pinnwand_version(python: str | None) -> str:
    if not python:
        return "not installed"
    proc = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('pinnwand'))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
