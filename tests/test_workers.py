"""--workers N: a supervisor and N worker processes sharing ports and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, paste_blocking

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def wait_until(predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=15) as response:
        return response.read()


def test_workers_share_ports_store_and_metrics_and_stop_cleanly(cli_server):
    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: len(children(server.proc.pid)) == 2)
    stored = {}
    for n in range(40):
        body = b"paste %d through some worker\n" % n
        stored[paste_blocking(server.tcp_port, body).decode().strip()] = body
    for url, body in stored.items():
        assert get(url) == body
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(get(f"{server.base_url}/metrics").decode())
        for s in family.samples
    }
    assert samples[("ncpaste_pastes_total", (("outcome", "created"), ("port", "tcp")))] == 40
    workers = children(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
    for pid in workers:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or
                   open(f"/proc/{pid}/stat").read().split()[2] == "Z")


def test_kill_9_of_the_supervisor_leaves_no_orphan(cli_server):
    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: len(children(server.proc.pid)) == 2)
    workers = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    for pid in workers:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}"))
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.tcp_port))


def test_a_crashed_worker_is_restarted(cli_server):
    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: "2 workers serving" in server.log_text())
    victim = min(children(server.proc.pid))
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(children(server.proc.pid) - {victim}) == 2)
    for n in range(10):
        url = paste_blocking(server.tcp_port, b"after the crash %d\n" % n).decode().strip()
        assert get(url) == b"after the crash %d\n" % n


def test_live_paste_followed_from_every_worker(cli_server):
    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: len(children(server.proc.pid)) == 2)
    writer = socket.create_connection(("127.0.0.1", server.live_port), timeout=10)
    url = b""
    while not url.endswith(b"\n"):
        url += writer.recv(1)
    url = url.decode().strip()
    results: list[bytes] = []

    def follow() -> None:
        results.append(subprocess.run(["curl", "-sN", url], capture_output=True, timeout=60).stdout)

    readers = [threading.Thread(target=follow) for _ in range(6)]
    for reader in readers:
        reader.start()
    lines = b""
    for n in range(10):
        line = b"live line %d\n" % n
        writer.sendall(line)
        lines += line
        time.sleep(0.1)
    writer.shutdown(socket.SHUT_WR)
    writer.recv(100)
    writer.close()
    for reader in readers:
        reader.join(timeout=60)
    assert results == [lines] * 6


def test_port_in_use_with_workers_is_one_clear_line(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "ncpaste", "serve", "--workers", "2", "--data-dir", str(tmp_path / "d"),
             "--tcp", f"127.0.0.1:{busy}", "--http", f"127.0.0.1:{free_port()}", "--live", "off"],
            capture_output=True, text=True, timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("ncpaste: error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in done.stderr


def _connections_on(pid: int, port: int) -> int:
    """Established TCP connections to local ``port`` among ``pid``'s fds."""
    established = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(fields[9])  # the socket's inode
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        count += target.startswith("socket:[") and target[8:-1] in established
    return count


def test_a_burst_of_connections_is_shared_by_the_workers(cli_server):
    """64 clients arriving together (wrk, a CI fleet) must not all land on
    the worker that woke first: each wake-up takes a bounded burst from the
    shared queue (net/server.MAX_ACCEPT_BURST)."""
    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: len(children(server.proc.pid)) == 2)
    workers = sorted(children(server.proc.pid))
    clients = []
    try:
        # All 64 wait in the kernel's queue before any worker looks: the
        # workers are stopped while the clients connect (the kernel completes
        # the handshakes), then both wake to the same full queue.
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            for _ in range(64):
                clients.append(socket.create_connection(("127.0.0.1", server.http_port), timeout=15))
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        for sock in clients:
            sock.setblocking(True)
            sock.settimeout(15)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in clients:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        held = {pid: _connections_on(pid, server.http_port) for pid in workers}
        assert sum(held.values()) == 64, held
        assert min(held.values()) >= 8, f"connections per worker: {held}"
    finally:
        for sock in clients:
            sock.close()
