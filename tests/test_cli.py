"""The real command line as a subprocess: flags, environment, startup errors,
signals, and what the running server says about itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ncpaste import __version__

from conftest import free_port, key_of
from conftest import paste_blocking as paste

# Bound on a CLI run that should exit by itself (usage errors, startup errors).
EXIT_TIMEOUT_S = 20
# Bound on the server's exit after SIGTERM/SIGINT: far above the time it
# needs, well below "hung".
SHUTDOWN_TIMEOUT_S = 10
IO_TIMEOUT_S = 10

TEXT = "first line ✓ ünïcödé\nsecond line 日本語\n".encode()


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without NCPASTE_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCPASTE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def ncpaste(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ncpaste", *args],
        capture_output=True, text=True, timeout=EXIT_TIMEOUT_S, cwd=cwd, env=env or clean_env(),
    )


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    """``serve`` on loopback ports in a temporary data dir, so a run that fails
    to fail does not grab a public port or write to the working directory."""
    return [
        "serve", "--data-dir", str(tmp_path / "data"),
        "--tcp", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{free_port()}",
        "--live", f"127.0.0.1:{free_port()}", *extra,
    ]


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=IO_TIMEOUT_S) as response:
        return response.status, response.read()


def assert_one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ncpaste: error: "), stderr
    return lines[0]


# -- usage errors: exit 2 ----------------------------------------------------------

def test_unknown_flag_exits_2_with_usage(tmp_path):
    done = ncpaste("serve", "--bogus", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: ncpaste"), done.stderr
    assert "unrecognized arguments: --bogus" in done.stderr
    assert done.stdout == ""


def test_bad_size_flag_exits_2_naming_the_flag(tmp_path):
    done = ncpaste(*serve_args(tmp_path, "--max-size", "10XB"), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "ncpaste: error: --max-size: " in done.stderr
    assert "10XB" in done.stderr
    assert not (tmp_path / "data").exists()


def test_bad_size_env_exits_2_naming_the_variable(tmp_path):
    done = ncpaste(*serve_args(tmp_path), cwd=tmp_path, env=clean_env(NCPASTE_MAX_SIZE="zz"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "ncpaste: error: NCPASTE_MAX_SIZE: " in done.stderr
    assert "'zz'" in done.stderr


def test_default_expire_beyond_max_expire_exits_2(tmp_path):
    done = ncpaste(*serve_args(tmp_path, "--default-expire", "100d"), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error = done.stderr.splitlines()[-1]
    assert error.startswith("ncpaste: error: --default-expire"), done.stderr
    assert "--max-expire" in error


def test_version(tmp_path):
    done = ncpaste("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ncpaste {__version__}\n"


# -- flags and environment ----------------------------------------------------------

def test_flag_beats_environment(cli_server, monkeypatch):
    monkeypatch.setenv("NCPASTE_MAX_SIZE", "1KiB")
    server = cli_server("--max-size", "1MiB")
    body = ("ten kibibytes of text ✓\n" * 500).encode()[: 10 * 1024]
    body = body.rsplit(b"\n", 1)[0] + b"\n"
    assert len(body) > 9 * 1024
    reply = paste(server.tcp_port, body)
    assert reply.startswith(f"{server.base_url}/".encode()), reply
    assert http_get(f"{server.base_url}/{key_of(reply)}") == (200, body)


def test_environment_alone_sets_the_limit(cli_server, monkeypatch):
    monkeypatch.setenv("NCPASTE_MAX_SIZE", "1KiB")
    server = cli_server()
    fits = b"x" * 1023 + b"\n"
    reply = paste(server.tcp_port, fits)
    assert http_get(f"{server.base_url}/{key_of(reply)}") == (200, fits)
    reply = paste(server.tcp_port, b"y" * 2047 + b"\n")
    assert reply == b"error: paste too large: the limit is 1 KiB\n"


# -- startup errors: exit 1, one clear line -----------------------------------------

@pytest.mark.parametrize("which", ["--tcp", "--http"])
def test_port_in_use_exits_1_with_one_clear_line(tmp_path, which):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        ports = {"--tcp": free_port(), "--http": free_port(), which: busy}
        done = ncpaste(
            "serve", "--data-dir", str(tmp_path / "data"),
            "--tcp", f"127.0.0.1:{ports['--tcp']}", "--http", f"127.0.0.1:{ports['--http']}",
            "--live", "off", cwd=tmp_path,
        )
    assert done.returncode == 1, done.stderr
    line = assert_one_error_line(done.stderr)
    # The user must learn which address is taken.
    assert f"127.0.0.1:{busy}" in line, line


def test_unusable_data_dir_exits_1_with_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data"
    done = ncpaste(
        "serve", "--data-dir", str(data_dir),
        "--tcp", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{free_port()}",
        "--live", "off", cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    line = assert_one_error_line(done.stderr)
    assert str(data_dir) in line, line


# -- signals -------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0_and_store_reopens(cli_server, tmp_path, signum):
    server = cli_server()
    stored: dict[str, bytes] = {}
    for n in range(5):
        body = f"paste {n} ✓\n".encode() * (n + 1)
        stored[key_of(paste(server.tcp_port, body))] = body
    for n in range(3):
        body = f"http paste {n} 日本語\n".encode()
        status, reply = http_post(f"{server.base_url}/", body)
        assert status == 201
        stored[key_of(reply)] = body
    alias_body = b"#!ncpaste alias=keep-me\n" + TEXT
    assert paste(server.tcp_port, alias_body) == f"{server.base_url}/keep-me\n".encode()
    stored["keep-me"] = TEXT

    server.proc.send_signal(signum)
    assert server.proc.wait(timeout=SHUTDOWN_TIMEOUT_S) == 0
    stderr = server.log_text()
    assert "Traceback" not in stderr, stderr
    assert "ncpaste: error" not in stderr, stderr

    reopened = cli_server(data_dir=server.data_dir)
    for key, body in stored.items():
        assert http_get(f"{reopened.base_url}/{key}") == (200, body), key


def test_sigterm_lets_an_upload_in_flight_finish(cli_server):
    """Shutdown stops accepting but gives a started paste its grace period."""
    server = cli_server("--idle-timeout", "30")
    with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=IO_TIMEOUT_S) as sock:
        sock.sendall(TEXT[:10])
        time.sleep(0.2)  # the server has accepted and is reading this upload
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the signal is handled while the upload is open
        sock.sendall(TEXT[10:])
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(f"{server.base_url}/".encode()), reply
    assert server.proc.wait(timeout=SHUTDOWN_TIMEOUT_S) == 0
    reopened = cli_server(data_dir=server.data_dir)
    assert http_get(f"{reopened.base_url}/{key_of(reply)}") == (200, TEXT)


# -- what the running server says -------------------------------------------------

def test_usage_page_names_the_real_url_and_tcp_port(cli_server):
    url = "https://paste.example.test:8443"
    server = cli_server("--url", url)
    status, body = http_get(f"{server.base_url}/")
    assert status == 200
    page = body.decode()
    host = "paste.example.test"
    assert f"| nc {host} {server.tcp_port}\n" in page, page
    assert f"| nc -N {host} {server.tcp_port} " in page, page
    assert f"curl --data-binary @build.log {url}/\n" in page, page
    assert f"{url}/k7Qm2xTfL9aR" in page
    assert f"127.0.0.1:{server.http_port}" not in page


def test_healthz(cli_server):
    server = cli_server()
    assert http_get(f"{server.base_url}/healthz") == (200, b"ok\n")
