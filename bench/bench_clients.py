"""The clients of a benchmark run: what they send and how they check it.

* Payloads: realistic CI log text, deterministic for a seed.
* A netcat-style raw TCP client (send, half-close, read the URL line) and an
  HTTP create client, both asyncio in several processes so that the client
  is not one Python process at 100 %; every N-th returned URL is read back
  and compared byte for byte.
* wrk for GETs, and its output parsed.
* Bulk loading a store directly, through ncpaste's own ``LmdbStore``.

Client processes and the bulk loader are registered with the run's
``ProcessRegistry``; HTTP read-backs go through the run's ``HttpConns``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import datetime as dt
import gzip
import http.client
import json
import math
import multiprocessing
import random
import re
import signal
import socket
import subprocess
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_servers import BENCH_DIR, HOST, REPO, KiB, ProcessRegistry, tail

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


# ---------------------------------------------------------------------------
# Realistic CI log text (deterministic for a seed, ASCII, no NUL)
# ---------------------------------------------------------------------------

_MODULES = ("store", "net", "core", "http", "netcat", "ingest", "codec", "limits", "proxy", "redact", "cli", "config")
_PACKAGES = ("numpy==1.26.4", "requests==2.31.0", "urllib3==2.2.1", "trio==0.25.0", "lmdb==1.4.1",
             "zstandard==0.22.0", "h11==0.14.0", "hypothesis==6.98.2", "pytest==8.1.1", "attrs==23.2.0",
             "idna==3.6", "sniffio==1.3.1", "sortedcontainers==2.4.0", "outcome==1.3.0")
_STEPS = ("Checkout", "Set up Python 3.11", "Install dependencies", "Lint", "Build wheels", "Run tests",
          "Upload coverage", "Publish artifacts", "Build docker image", "Deploy preview")
_HOSTS = ("runner-7f3a", "runner-0c91", "gha-ubuntu-22", "build-42.ci.internal")
_KEY_CHARS = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


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
                    f"key={''.join(rng.choice(_KEY_CHARS) for _ in range(12))} "
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
# HTTP fetches for verification (http.client, one connection per server)
# ---------------------------------------------------------------------------


class HttpConns:
    """One keep-alive ``http.client`` connection per loopback server, for
    read-backs and health checks (never for timed traffic). Not shared
    between threads."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        key = (parts.hostname or HOST, parts.port or 80)
        assert key[0] in ("127.0.0.1", "localhost"), f"refusing to fetch a non-loopback URL: {url}"
        for attempt in range(2):
            conn = self._conns.get(key)
            if conn is None:
                conn = self._conns[key] = http.client.HTTPConnection(key[0], key[1], timeout=30)
            try:
                conn.request("GET", parts.path or "/", headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conns.pop(key, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def read(self, url: str) -> bytes:
        """The body of a 200 answer, else RuntimeError."""
        status, _, body = self.get(url)
        if status != 200:
            raise RuntimeError(f"GET {url} answered {status}")
        return body

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def response_head(url: str) -> bytes:
    """The status line and headers a server sends to a GET as wrk sends it
    (Host only), through the blank line: what its response head weighs."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == HOST, f"refusing to fetch a non-loopback URL: {url}"
    with socket.create_connection((HOST, parts.port or 80), timeout=30) as sock:
        sock.sendall(f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"GET {url}: connection closed before the end of the response head")
            got += chunk
    return got.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"


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


async def exchange_once(spec: ClientSpec) -> bytes:
    """The server's whole answer to the first request of ``spec``."""
    return await _exchange(asyncio.get_running_loop(), spec.port, spec.requests[0], spec.op == "nc")


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


def run_clients(spec: ClientSpec, concurrency: int, *, procs: int, registry: ProcessRegistry,
                duration_s: float | None = None, per_conn: int = 1, once: bool = False,
                on_tick: Callable[[], None] | None = None) -> dict:
    """Drive one server with ``concurrency`` connections spread over
    ``procs`` processes, for ``duration_s`` or ``per_conn`` requests each
    (with ``once``: every body exactly once, then stop). The processes are
    in ``registry`` while they run."""
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
            registry.add_client(proc)
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
            registry.discard_client(proc)
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
# Bulk loading a store directly (run in a child process, `bench.py _bulkload`:
# LMDB allows one environment per process, and the server may have it open
# meanwhile)
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


def bulk_load(registry: ProcessRegistry, data_dir: Path, count: int, expire_s: int, keys_out: Path, seed: int, *,
              python: str, env: dict[str, str]) -> dict:
    """Fill ``data_dir`` with ``count`` pastes through ``python bench.py _bulkload``."""
    cmd = [python, str(BENCH_DIR / "bench.py"), "_bulkload", "--data-dir", str(data_dir),
           "--count", str(count), "--expire-s", str(expire_s), "--keys-out", str(keys_out), "--seed", str(seed)]
    log = data_dir.parent / f"bulkload-{data_dir.name}.log"
    proc = registry.start(cmd, log, cwd=REPO, env=env)
    try:
        code = proc.wait()
    finally:
        registry.stop(proc)
    if code != 0:
        raise RuntimeError(f"bulk load failed ({code}):\n{tail(log)}")
    return json.loads(log.read_text().strip().splitlines()[-1])


def read_keys(path: Path) -> list[tuple[str, int]]:
    return [(k, int(i)) for k, i in (line.split() for line in path.read_text().splitlines() if line)]
