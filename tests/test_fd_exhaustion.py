"""File-descriptor exhaustion: the real server started under ``ulimit -n 256``
(``prlimit``) and hit by 1,000 concurrent connections keeps its listeners,
logs the overload once per interval (not once per failed accept), and serves
normally once the flood ends."""

from __future__ import annotations

import resource
import shutil
import socket
import time

import pytest

from conftest import TEST_TIMEOUT_S, paste_blocking, start_cli

PRLIMIT = shutil.which("prlimit")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(PRLIMIT is None, reason="prlimit (util-linux) not installed")]

SERVER_FDS = 256
FLOOD = 1000


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_flood_past_the_fd_limit_is_survived_logged_once_per_interval_and_then_served(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 200:
        pytest.skip(f"this process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, FLOOD + 200), hard))
    server = start_cli(
        tmp_path / "data", "--limits", "off",
        wrapper=(PRLIMIT, f"--nofile={SERVER_FDS}"),
    )
    flood: list[socket.socket] = []
    try:
        before = paste_blocking(server.tcp_port, b"before the flood\n").decode().strip()
        # 1,000 connections that send nothing: each the server accepts holds
        # a descriptor (until the 10 s header timeout), the rest wait in the
        # kernel's queue while accept() fails with EMFILE.
        for _ in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", server.http_port), timeout=5))
        started = time.monotonic()
        deadline = started + TEST_TIMEOUT_S
        while "overload: accept" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()[-2000:]
            time.sleep(0.1)
        time.sleep(3)  # ~30 more failed accepts at one retry per 0.1 s
        flooded_s = time.monotonic() - started
        assert server.proc.poll() is None, "the server died under the flood"
        lines = [line for line in server.log_text().splitlines() if "overload: accept" in line]
        # One line per 10 s interval (the first at once), not one per failed accept.
        assert 1 <= len(lines) <= 1 + flooded_s // 10 + 1, lines
        assert "Too many open files" in lines[0]
    finally:
        for sock in flood:
            sock.close()
    try:
        # The flood is gone: the same listeners serve again, on both ports.
        deadline = time.monotonic() + TEST_TIMEOUT_S
        while True:
            try:
                after = paste_blocking(server.tcp_port, b"after the flood\n", timeout_s=5).decode().strip()
                if after.startswith("http://"):
                    break
            except OSError:
                pass  # refused or reset while the server frees descriptors
            assert time.monotonic() < deadline, server.log_text()[-2000:]
            time.sleep(0.2)
        key = before.rsplit("/", 1)[1]
        assert http_get(server.http_port, "/" + key).endswith(b"\r\n\r\nbefore the flood\n")
        assert http_get(server.http_port, "/" + after.rsplit("/", 1)[1]).endswith(b"\r\n\r\nafter the flood\n")
        assert "overload over" in server.log_text()
        assert "Traceback" not in server.log_text()
    finally:
        assert server.stop() == 0
