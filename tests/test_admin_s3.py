"""The admin commands on ``--store s3://``, against a real SeaweedFS and a
real ncpaste node: get, delete (an open live paste too), stats, export and
import work as they do on the embedded store, through the same store
interface, run as the operator runs them (``python -m ncpaste ...``)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import key_of, paste_blocking, s3_url

pytestmark = pytest.mark.slow

# Bound on each command; a hang fails the test instead of CI.
COMMAND_TIMEOUT_S = 60
# How long a live writer waits for its URL line.
URL_TIMEOUT_S = 10


def admin(*argv: str, store: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ncpaste", *argv, "--store", store],
        input=stdin, capture_output=True, timeout=COMMAND_TIMEOUT_S,
    )


def http(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def objects(engine, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every object name under ``prefix`` in the test bucket."""
    listed = engine.client().list_objects_v2(Bucket="ncpaste-test", Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def prefix_of(store: str) -> str:
    return store.split("://", 1)[1].split("?", 1)[0].split("/", 1)[1]


def test_get_delete_stats_export_import_on_s3(s3_env, cli_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = s3_url(s3_env)
    node = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "node")
    bodies = {}
    for n in range(5):
        body = "".join(f"build step {n}.{i}: ok ✓\n" for i in range(50 * (n + 1))).encode()
        bodies[key_of(paste_blocking(node.tcp_port, body))] = body

    key, body = next(iter(bodies.items()))
    got = admin("get", key, store=store)
    assert (got.returncode, got.stdout) == (0, body), got.stderr
    meta = admin("get", "--meta", key, store=store)
    assert meta.returncode == 0 and f"size:     {len(body)} bytes".encode() in meta.stdout
    absent = admin("get", "zzzzzzzzzzzz", store=store)
    assert (absent.returncode, absent.stderr) == (1, b"ncpaste: error: no such paste\n")

    stats = admin("stats", "--json", store=store)
    assert stats.returncode == 0, stats.stderr
    counted = json.loads(stats.stdout)
    assert counted["pastes"] == len(bodies)
    assert counted["original_bytes"] == sum(len(b) for b in bodies.values())
    assert 0 < counted["stored_bytes"] < counted["original_bytes"]
    # What only the embedded store keeps is not made up on S3.
    assert counted["pool_keys"] is None and counted["data_file_bytes"] is None and counted["commits"] is None
    text = admin("stats", store=store).stdout.decode()
    assert f"pastes:         {len(bodies)} live" in text and "key pool" not in text

    export = tmp_path / "bucket.jsonl"
    exported = admin("export", str(export), store=store)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in export.read_bytes().splitlines()]
    assert lines[-1] == {"format": "ncpaste-export-end", "pastes": len(bodies)}
    assert {p["key"]: base64.b64decode(p["body_b64"]) for p in lines[1:-1]} == bodies

    deleted = admin("delete", key, store=store)
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted {key}\n".encode()), deleted.stderr
    assert http("GET", f"{node.base_url}/{key}")[0] == 404
    assert admin("delete", key, store=store).returncode == 1

    # Into a fresh prefix: the same keys, bytes and delete tokens, read by a
    # node there; importing again is all conflicts, nothing overwritten.
    other = s3_url(s3_env)
    imported = admin("import", str(export), store=other)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(f"imported {len(bodies)} pastes; skipped 0 conflicts".encode())
    again = admin("import", str(export), store=other)
    assert again.stdout.startswith(f"imported 0 pastes; skipped {len(bodies)} conflicts".encode())
    dry = admin("import", "--dry-run", str(export), store=other)
    assert dry.stdout.startswith(f"dry run: would import 0 pastes; skipped {len(bodies)} conflicts".encode())
    reader = cli_server("--store", other, "--limits", "off", data_dir=tmp_path / "reader")
    for k, b in bodies.items():
        assert http("GET", f"{reader.base_url}/{k}") == (200, b)
    # Every import wrote its expiry markers: the sweeper will find them.
    assert objects(s3_env, prefix_of(other) + "/x/")


def test_delete_of_an_open_live_paste_on_s3_leaves_nothing_behind(s3_env, cli_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = s3_url(s3_env)
    node = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "node")
    with socket.create_connection(("127.0.0.1", node.live_port), timeout=URL_TIMEOUT_S) as writer:
        line = b""
        while not line.endswith(b"\n"):
            line += writer.recv(1)
        key = key_of(line)
        writer.sendall(b"line 1\nline 2\n")
        groups = prefix_of(store) + f"/l/{key}/"
        deadline = time.monotonic() + URL_TIMEOUT_S
        while not objects(s3_env, groups):  # the node commits a group every 0.5 s
            assert time.monotonic() < deadline, "the live paste committed no group"
            time.sleep(0.1)
        deleted = admin("delete", key, store=store)
        assert (deleted.returncode, deleted.stdout) == (0, f"deleted {key}\n".encode()), deleted.stderr
        assert objects(s3_env, groups) == []
        assert objects(s3_env, prefix_of(store) + f"/p/{key}") == []
        writer.sendall(b"line 3\n")  # the node finds its paste gone and says so
    assert http("GET", f"{node.base_url}/{key}")[0] == 404
    deadline = time.monotonic() + URL_TIMEOUT_S
    while objects(s3_env, groups):
        assert time.monotonic() < deadline, "groups written after the delete were left behind"
        time.sleep(0.1)
