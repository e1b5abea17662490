"""Durability against the real process: kill -9 mid-stream, a full disk."""

from __future__ import annotations

import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import free_port, paste_blocking, wait_for_port

pytestmark = pytest.mark.slow

CLIENTS = 8
ROUNDS = 3


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _spawn(data_dir, tcp_port: int, http_port: int, preexec=None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(data_dir),
         "--tcp", f"127.0.0.1:{tcp_port}", "--http", f"127.0.0.1:{http_port}",
         "--url", f"http://127.0.0.1:{http_port}", "--limits", "off", "--live", "off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec,
    )
    wait_for_port(tcp_port)
    wait_for_port(http_port)
    return proc


def test_kill_9_during_concurrent_pastes_loses_nothing_acknowledged(tmp_path):
    tcp_port, http_port = free_port(), free_port()
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    for round_no in range(ROUNDS):
        proc = _spawn(tmp_path / "data", tcp_port, http_port)
        stop = threading.Event()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                size = rng.choice([20, 2_000, 60_000, 300_000])
                body = "".join(
                    f"r{round_no} c{seed} {rng.random():.12f} ✓\n" for _ in range(max(size // 30, 1))
                ).encode()
                try:
                    reply = paste_blocking(tcp_port, body)
                except OSError:
                    continue  # refused or reset by the kill: never acknowledged
                if reply.startswith(b"http://"):
                    with lock:
                        acknowledged[reply.decode().strip()] = body

        threads = [threading.Thread(target=client, args=(round_no * 100 + n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: clients are still sending
        proc.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)

    assert len(acknowledged) > 50, "the load did not get going"
    proc = _spawn(tmp_path / "data", tcp_port, http_port)
    try:
        for url, body in acknowledged.items():
            assert _get(url) == body, url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_full_disk_is_a_clear_error_and_reads_go_on(tmp_path):
    """RLIMIT_FSIZE makes the store's file unable to grow, as a full disk does."""
    tcp_port, http_port = free_port(), free_port()
    limit = 4 * 1024 * 1024

    def cap_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _spawn(tmp_path / "data", tcp_port, http_port, preexec=cap_file_size)
    try:
        rng = random.Random(7)
        stored: dict[str, bytes] = {}
        refusal = b""
        for _ in range(200):
            # Random hex compresses only ~2x, so the file fills quickly.
            body = "".join(f"{rng.getrandbits(256):064x}\n" for _ in range(3000)).encode()
            reply = paste_blocking(tcp_port, body)
            if reply.startswith(b"error:"):
                refusal = reply
                break
            stored[reply.decode().strip()] = body
        assert refusal == b"error: storage full: the server's disk is full, try later\n"
        assert stored, "nothing fit before the disk filled"
        for url, body in stored.items():
            assert _get(url) == body
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(request, timeout=10)
        assert excinfo.value.code == 507
        assert _get(f"http://127.0.0.1:{http_port}/healthz") == b"ok\n"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_kill_9_during_a_live_paste_keeps_what_readers_saw(tmp_path):
    """Readers are shown committed bytes only: after a crash, everything a
    reader saw is served, marked incomplete."""
    tcp_port, http_port, live_port = free_port(), free_port(), free_port()

    def spawn() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(tmp_path / "data"),
             "--tcp", f"127.0.0.1:{tcp_port}", "--http", f"127.0.0.1:{http_port}",
             "--live", f"127.0.0.1:{live_port}", "--url", f"http://127.0.0.1:{http_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(live_port)
        wait_for_port(http_port)
        return proc

    proc = spawn()
    writer = socket.create_connection(("127.0.0.1", live_port), timeout=10)
    url = b""
    while not url.endswith(b"\n"):
        url += writer.recv(1)
    key = url.decode().strip().rsplit("/", 1)[1]
    shown = b""
    with socket.create_connection(("127.0.0.1", http_port), timeout=10) as reader:
        reader.sendall(f"GET /{key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        for n in range(5):
            writer.sendall(b"progress %d\n" % n)
            deadline = time.monotonic() + 5
            while (b"progress %d\n" % n) not in shown and time.monotonic() < deadline:
                shown += reader.recv(65536)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    writer.close()
    seen = b"".join(b"progress %d\n" % n for n in range(5))
    assert all(b"progress %d\n" % n in shown for n in range(5))  # each in its own chunk

    proc = spawn()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/{key}", timeout=10) as response:
            assert response.headers["X-Paste-State"] == "incomplete"
            assert response.read().startswith(seen)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
