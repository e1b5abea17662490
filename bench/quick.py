"""Quick load figures for one ncpaste server on loopback (not the full
side-by-side benchmark with references: that is bench's job for issue 4).

    .venv/bin/python bench/quick.py [--seconds 5]

Starts `ncpaste serve` on a temporary data dir, drives it with a trio client
in this process, and (if `wrk` is installed) measures keep-alive GETs.
Every returned URL of a sample is fetched back and compared byte for byte.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_text(size: int, rng: random.Random) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = f"[{rng.randint(0, 99999):05d}] INFO build step {rng.random():.6f} ok\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size - 1] + b"\n"


async def nc_paste(port: int, body: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(body)
        await stream.send_eof()
        reply = b""
        while chunk := await stream.receive_some(4096):
            reply += chunk
        return reply


async def http_create(port: int, body: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"POST / HTTP/1.1\r\nHost: b\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        reply = b""
        while chunk := await stream.receive_some(4096):
            reply += chunk
        return reply.split(b"\r\n\r\n", 1)[1]


async def ingest(kind: str, port: int, size: int, clients: int, seconds: float) -> tuple[int, list[float], list[tuple[str, bytes]]]:
    rng = random.Random(size)
    bodies = [log_text(size, rng) for _ in range(8)]
    latencies: list[float] = []
    sample: list[tuple[str, bytes]] = []
    send = nc_paste if kind == "nc" else http_create
    deadline = trio.current_time() + seconds

    async def client(n: int) -> None:
        i = 0
        while trio.current_time() < deadline:
            body = bodies[(n + i) % len(bodies)]
            started = time.perf_counter()
            reply = await send(port, body)
            latencies.append(time.perf_counter() - started)
            if not reply.startswith(b"http"):
                raise RuntimeError(f"paste failed: {reply[:100]!r}")
            if i % 20 == 0:
                sample.append((reply.decode().strip(), body))
            i += 1

    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(client, n)
    return len(latencies), latencies, sample


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 2 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tcp, http = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="ncpaste-bench-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(data), "--tcp", f"127.0.0.1:{tcp}",
         "--http", f"127.0.0.1:{http}", "--url", f"http://127.0.0.1:{http}", "--log-level", "warning", "--limits", "off", "--live", "off"],
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", http), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rows = []
        for label, kind, size, clients in [
            ("nc ingest 1 KiB x1", "nc", 1024, 1),
            ("nc ingest 1 KiB x32", "nc", 1024, 32),
            ("nc ingest 1 MiB x4", "nc", 1024 * 1024, 4),
            ("HTTP create 1 KiB x32", "http", 1024, 32),
        ]:
            count, latencies, sample = trio.run(ingest, kind, tcp if kind == "nc" else http, size, clients, args.seconds)
            for url, body in sample:
                with urllib.request.urlopen(url) as response:
                    assert response.read() == body, url
            rows.append((label, count / args.seconds, p99(latencies) * 1000))
        for size in (1024, 100 * 1024):
            url = trio.run(nc_paste, tcp, log_text(size, random.Random(1))).decode().strip()
            if shutil.which("wrk"):
                out = subprocess.run(
                    ["wrk", "-t2", "-c64", f"-d{args.seconds:g}s", "--latency", url],
                    capture_output=True, text=True, check=True,
                ).stdout
                rate = float(out.split("Requests/sec:")[1].split()[0])
                p99_line = [line for line in out.splitlines() if line.strip().startswith("99%")]
                p99_text = p99_line[0].split()[1] if p99_line else "?"
                rows.append((f"GET {size // 1024} KiB x64 (wrk)", rate, p99_text))
        disk = sum(f.stat().st_size for f in data.iterdir())
        print(f"{'cell':<26} {'per s':>10} {'p99':>10}")
        for label, rate, tail in rows:
            tail_text = f"{tail:.1f} ms" if isinstance(tail, float) else tail
            print(f"{label:<26} {rate:>10.0f} {tail_text:>10}")
        print(f"data dir: {disk / 1e6:.1f} MB")
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
