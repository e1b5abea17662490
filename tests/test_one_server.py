"""One server per data dir: a second `ncpaste serve` refuses before touching anything.

The scenario a new user hit: a live paste is being written and followed, and
a second server started on the same --data-dir (a typo, a second unit, a
cron job) closed it as "left open by a crash". Real processes, real nc and
curl, real sockets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port, key_of, start_cli, wait_for_port

pytestmark = pytest.mark.slow

LINES = 8
# Between two lines of the writer: long enough that the second server's
# start-up falls in the middle of the paste.
LINE_GAP_S = 0.5


def second_serve(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``ncpaste serve`` on fresh ports, as the operator's typo would start it."""
    return subprocess.run(
        [
            sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(data_dir),
            "--tcp", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{free_port()}",
            "--live", f"127.0.0.1:{free_port()}", *extra,
        ],
        capture_output=True, text=True, timeout=30,
    )


def live_writer(port: int) -> subprocess.Popen[str]:
    script = f"for i in $(seq {LINES}); do echo \"w $i\"; sleep {LINE_GAP_S}; done | nc -N 127.0.0.1 {port}"
    return subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen[str], timeout_s: float = 10) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = proc.stdout.readline()
    assert line and time.monotonic() < deadline, "no URL from the live port"
    return line.strip()


@pytest.mark.parametrize("second_workers", ["1", "2"])
def test_a_second_server_refuses_and_the_live_paste_completes(tmp_path, second_workers):
    data_dir = tmp_path / "data"
    server = start_cli(data_dir, "--limits", "off")
    try:
        writer = live_writer(server.live_port)
        url = first_line(writer)
        follower = subprocess.Popen(["curl", "-sN", "--max-time", "30", url], stdout=subprocess.PIPE, text=True)
        time.sleep(LINE_GAP_S * 2.5)  # the paste is open, a few lines in

        second = second_serve(data_dir, "--workers", second_workers)

        assert second.returncode == 1, second
        assert second.stderr.strip() == (
            f"ncpaste: error: another ncpaste server is using {data_dir} (pid {server.proc.pid})"
        )
        assert "left open" not in second.stderr
        rest, writer_err = writer.communicate(timeout=30)
        assert writer.returncode == 0 and "error" not in rest + writer_err
        followed, _ = follower.communicate(timeout=30)
        expected = "".join(f"w {i}\n" for i in range(1, LINES + 1))
        assert followed == expected
        read = subprocess.run(["curl", "-si", url], capture_output=True, text=True, timeout=30).stdout
        assert "x-paste-state: complete" in read
        assert read.endswith(expected)
        assert "left open" not in server.log_text()
    finally:
        server.stop()


def test_the_lock_goes_with_the_process_even_after_kill_9(tmp_path):
    data_dir = tmp_path / "data"
    server = start_cli(data_dir, "--limits", "off")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    again = start_cli(data_dir, "--limits", "off")
    try:
        assert again.proc.poll() is None
    finally:
        again.stop()


def test_a_supervisor_holds_the_lock_for_its_workers(tmp_path):
    data_dir = tmp_path / "data"
    server = start_cli(data_dir, "--limits", "off", "--workers", "2")
    try:
        second = second_serve(data_dir)
        assert second.returncode == 1
        assert f"another ncpaste server is using {data_dir} (pid {server.proc.pid})" in second.stderr
        # Its workers serve on, one data dir, no lock trouble among themselves.
        reply = subprocess.run(
            ["nc", "-N", "127.0.0.1", str(server.tcp_port)], input=b"still here\n", capture_output=True, timeout=30
        ).stdout
        body = subprocess.run(
            ["curl", "-s", f"{server.base_url}/{key_of(reply)}"], capture_output=True, timeout=30
        ).stdout
        assert body == b"still here\n"
    finally:
        server.stop()


def test_port_in_use_is_found_before_the_store_is_touched(tmp_path):
    """Ports are bound before recovery: a server whose port is taken writes
    nothing, not even to a data dir nobody else is using."""
    busy = start_cli(tmp_path / "other", "--limits", "off")
    try:
        data_dir = tmp_path / "fresh"
        result = subprocess.run(
            [sys.executable, "-m", "ncpaste", "serve", "--data-dir", str(data_dir),
             "--tcp", f"127.0.0.1:{busy.tcp_port}", "--http", f"127.0.0.1:{free_port()}", "--live", "off"],
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 1
        assert "cannot listen on" in result.stderr and "Address already in use" in result.stderr
        assert sorted(os.listdir(data_dir)) == ["server.lock"]  # no LMDB files were created
    finally:
        busy.stop()


def test_admin_commands_work_beside_a_running_server(tmp_path):
    data_dir = tmp_path / "data"
    server = start_cli(data_dir, "--limits", "off")
    try:
        wait_for_port(server.tcp_port)
        reply = subprocess.run(
            ["nc", "-N", "127.0.0.1", str(server.tcp_port)], input=b"hello\n", capture_output=True, timeout=30
        ).stdout
        got = subprocess.run(
            [sys.executable, "-m", "ncpaste", "get", key_of(reply), "--data-dir", str(data_dir)],
            capture_output=True, timeout=30,
        )
        assert got.returncode == 0 and got.stdout == b"hello\n"
        checked = subprocess.run(
            [sys.executable, "-m", "ncpaste", "check", "--data-dir", str(data_dir)], capture_output=True, timeout=60
        )
        assert checked.returncode == 0, checked
    finally:
        server.stop()


def test_two_s3_nodes_cannot_share_one_local_data_dir(cli_server, s3_env, tmp_path):
    """On S3 the data dir holds the node's key pool and its open live
    pastes: a second node on it is refused the same way."""
    from conftest import s3_url

    store = s3_url(s3_env)
    node = cli_server("--store", store, "--limits", "off", data_dir=tmp_path / "node")
    second = second_serve(tmp_path / "node", "--store", store)
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"ncpaste: error: another ncpaste server is using {tmp_path / 'node'} (pid {node.proc.pid})"
    )
