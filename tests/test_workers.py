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
