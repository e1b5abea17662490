"""Debian's slowhttptest against the real server's HTTP port, each mode:
slowloris (-H), slow body (-B), slow read (-X) and the Apache range attack
(-R), with 1,000 connections (what a thread-per-connection server with a few
hundred threads does not survive). While each runs, an ordinary client's
netcat paste and HTTP read answer within 5 s; afterwards every earlier paste
is intact. The per-client limits are off here, so the timeouts and the
connection cap are what is tested (with the defaults, one attacking address
gets 32 connections and no more). Each run prints what the attack did
(slowhttptest's own counts); the README's "Running in public" quotes them."""

from __future__ import annotations

import csv
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import paste_blocking, start_cli

SLOWHTTPTEST = shutil.which("slowhttptest")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SLOWHTTPTEST is None, reason="slowhttptest not installed")]

CONNECTIONS = 1000
ATTACK_S = 12
# What "still answers" means while an attack runs.
ORDINARY_TIMEOUT_S = 5.0
BIG_PASTE = b"".join(b"line %06d of a long CI log, for the slow read\n" % n for n in range(24_000))  # ~1.1 MiB

MODES = {
    # name: slowhttptest arguments beyond the shared ones
    "slowloris": ["-H", "-i", "5"],
    "slow-body": ["-B", "-i", "5", "-s", "8192"],
    "slow-read": ["-X", "-k", "3", "-n", "1", "-w", "1", "-y", "64", "-z", "32"],
    "range": ["-R", "-a", "10", "-b", "3000"],
}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture(scope="module")
def target(tmp_path_factory):  # type: ignore[no-untyped-def]
    raise_fd_limit()
    server = start_cli(tmp_path_factory.mktemp("attacks") / "data", "--limits", "off")
    big = paste_blocking(server.tcp_port, BIG_PASTE).decode().strip()
    yield server, big
    assert server.stop() == 0


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=ORDINARY_TIMEOUT_S) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def attack_summary(csv_path: Path) -> dict[str, int]:
    """slowhttptest's per-second counts: the most connections it held at
    once, and how many the server had closed by the end."""
    with open(csv_path, newline="") as f:
        rows = [row for row in csv.DictReader(f)]
    assert rows, csv_path
    def column(row: dict[str, str], name: str) -> int:
        return int(next(v for k, v in row.items() if k and k.strip().lower() == name))
    return {
        "peak_connected": max(column(row, "connected") for row in rows),
        "closed_at_end": column(rows[-1], "closed"),
        "seconds": len(rows),
    }


@pytest.mark.parametrize("mode", list(MODES))
def test_an_attack_leaves_ordinary_clients_served(target, mode, tmp_path):
    server, big_url = target
    big_key = big_url.rsplit("/", 1)[1]
    url = f"http://127.0.0.1:{server.http_port}/" + (big_key if mode in ("slow-read", "range") else "")
    prefix = tmp_path / mode
    attack = subprocess.Popen(
        [SLOWHTTPTEST, *MODES[mode], "-c", str(CONNECTIONS), "-r", "250", "-l", str(ATTACK_S),
         "-p", "3", "-u", url, "-g", "-o", str(prefix)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_fd_limit,
    )
    mine: list[tuple[str, bytes]] = []
    worst_s = 0.0
    try:
        time.sleep(2)  # let the attack reach its connections
        while attack.poll() is None:
            started = time.monotonic()
            body = b"an ordinary paste during %s, %d\n" % (mode.encode(), len(mine))
            reply = paste_blocking(server.tcp_port, body, timeout_s=ORDINARY_TIMEOUT_S).decode().strip()
            assert reply.startswith("http://"), reply
            key = reply.rsplit("/", 1)[1]
            assert http_get(server.http_port, "/" + key).endswith(b"\r\n\r\n" + body)
            worst_s = max(worst_s, time.monotonic() - started)
            mine.append((key, body))
            time.sleep(0.5)
        assert attack.wait(timeout=30) == 0
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait()
    assert len(mine) >= 3, "the attack ended before the ordinary client could try"
    # Afterwards: every paste of this run, and the big one, read back whole.
    for key, body in mine:
        assert http_get(server.http_port, "/" + key).endswith(b"\r\n\r\n" + body)
    assert http_get(server.http_port, "/" + big_key).endswith(BIG_PASTE[-2000:])
    assert server.proc.poll() is None
    summary = attack_summary(prefix.with_suffix(".csv"))
    print(f"\n{mode}: slowhttptest held at most {summary['peak_connected']} connections at once, "
          f"{summary['closed_at_end']} closed by the server by the end of {summary['seconds']} s; "
          f"ordinary paste + read: worst {worst_s * 1000:.0f} ms over {len(mine)} tries")
    assert "Traceback" not in server.log_text()
