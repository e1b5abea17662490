"""The real server under systemd's protocols: socket activation, READY/STOPPING,
and a watchdog served from the event loop (systemd-socket-activate stands in
for PID 1, a datagram socket in the test for NOTIFY_SOCKET)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import free_port, paste_blocking

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed"
)


def _receive_states(sock: socket.socket, until: str, timeout_s: float) -> list[str]:
    states: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            states.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if any(until in state for state in states):
            break
    return states


def test_socket_activated_server_notifies_and_serves(tmp_path):
    tcp_port, http_port = free_port(), free_port()
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NCPASTE_"))}
        proc = subprocess.Popen(
            [
                "systemd-socket-activate",
                "-l", f"127.0.0.1:{tcp_port}", "-l", f"127.0.0.1:{http_port}", "--fdname=netcat:http",
                "-E", f"NOTIFY_SOCKET={notify_path}", "-E", "WATCHDOG_USEC=400000",
                sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(tmp_path / "data"),
                # Bind addresses that would fail: the inherited sockets must be used instead.
                "--tcp", "192.0.2.1:1", "--http", "192.0.2.1:2", "--live", "off",
                "--url", f"http://127.0.0.1:{http_port}",
            ],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
        )
        try:
            time.sleep(0.3)
            reply = paste_blocking(tcp_port, b"activated\n")  # the first connection starts it
            assert reply.startswith(f"http://127.0.0.1:{http_port}/".encode()), (tmp_path / "server.log").read_text()
            with socket.create_connection(("127.0.0.1", http_port), timeout=10) as http:
                http.sendall(f"GET /{reply.decode().strip().rsplit('/', 1)[1]} HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n".encode())
                answer = b""
                while chunk := http.recv(65536):
                    answer += chunk
            assert answer.endswith(b"\r\n\r\nactivated\n")
            states = _receive_states(notify, "WATCHDOG=1", 10)
            assert any(state.startswith("READY=1") for state in states), states
            more = _receive_states(notify, "WATCHDOG=1", 2)
            assert "WATCHDOG=1" in states + more
            proc.send_signal(signal.SIGTERM)
            stopping = _receive_states(notify, "STOPPING=1", 10)
            assert "STOPPING=1" in stopping
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
