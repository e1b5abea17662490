"""Backup while the server runs under load, check, and restore end to end."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import paste_blocking

pytestmark = pytest.mark.slow


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _ncpaste(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncpaste", *args], capture_output=True, text=True, timeout=60)


def test_backup_under_load_then_restore_serves_every_paste(cli_server, tmp_path):
    server = cli_server("--limits", "off")
    before: dict[str, bytes] = {}
    for n in range(200):
        body = "".join(f"paste {n} line {i} ✓\n" for i in range(n % 50 + 1)).encode()
        before[paste_blocking(server.tcp_port, body).decode().strip()] = body

    stop = threading.Event()
    during: dict[str, bytes] = {}

    def load() -> None:
        n = 0
        while not stop.is_set():
            body = f"written during the backup {n}\n".encode() * 20
            reply = paste_blocking(server.tcp_port, body)
            if reply.startswith(b"http://"):
                during[reply.decode().strip()] = body
            n += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        time.sleep(0.2)
        done = _ncpaste("backup", str(tmp_path / "copy"), "--data-dir", str(server.data_dir))
    finally:
        stop.set()
        writer.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backup of ")
    assert during, "the load did not run during the backup"

    checked = _ncpaste("check", "--data-dir", str(tmp_path / "copy"))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.strip().endswith(": ok")

    server.stop()
    restored = cli_server("--limits", "off", data_dir=tmp_path / "copy")
    for url, body in before.items():
        port_path = url.split(":", 2)[2]  # PORT/KEY
        key = port_path.split("/", 1)[1]
        assert _get(f"{restored.base_url}/{key}") == body


def test_check_finds_damage_and_exits_1(cli_server, tmp_path):
    import lmdb

    server = cli_server()
    url = paste_blocking(server.tcp_port, b"soon to be damaged\n").decode().strip()
    server.stop()
    key = url.rsplit("/", 1)[1].encode()
    env = lmdb.open(str(server.data_dir), max_dbs=4)
    with env.begin(write=True) as txn:
        db = env.open_db(b"pastes", txn=txn)
        record = bytearray(txn.get(key, db=db))
        record[-2] ^= 0x55
        txn.put(key, bytes(record), db=db)
    env.close()
    checked = _ncpaste("check", "--data-dir", str(server.data_dir))
    assert checked.returncode == 1
    assert key.decode() in checked.stdout
    assert "soon to be damaged" not in checked.stdout


def test_sighup_rereads_the_access_list_file(cli_server, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("# nobody denied yet\n")
    server = cli_server("--acl-file", str(acl))
    assert paste_blocking(server.tcp_port, b"before\n").startswith(b"http://")
    acl.write_text("deny 127.0.0.0/8\n")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = paste_blocking(server.tcp_port, b"after\n")
        if reply.startswith(b"error:"):
            break
        time.sleep(0.1)
    assert reply == b"error: your address may not use this service\n"
    assert server.proc.poll() is None  # SIGHUP did not stop it
    acl.write_text("deny not-an-address\n")  # a broken file keeps the old list
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert paste_blocking(server.tcp_port, b"still denied\n").startswith(b"error: your address")
