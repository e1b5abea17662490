"""End to end with the programs users really type: nc, ncat, socat, bash, curl.

Each test starts the real ``ncpaste serve`` process (the ``cli_server``
fixture), drives it with a real client through ``subprocess`` and checks what
that client prints and what ``curl`` reads back, byte for byte.
"""

from __future__ import annotations

import re
import subprocess
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from ncpaste.core.keys import KEY_ALPHABET

from conftest import Reply

# Generous bound on one client run: far above any expected answer time, so a
# hang (a missed half-close, a server that never replies) fails instead of
# stalling the suite.
CLIENT_TIMEOUT_S = 20
# The netcat idle gap for tests of clients that never half-close.
SHORT_IDLE = "0.5"
# For clients that half-close: an idle timeout the test can never reach, so a
# URL within CLIENT_TIMEOUT_S proves the server answered on FIN, not on idle.
LONG_IDLE = "60"

# Multi-line UTF-8 with 2-, 3- and 4-byte characters, a tab, a CRLF and no
# final newline: anything a server could mangle on the way through.
TEXT = (
    "héllo wörld — ncpaste test\n"
    "line 2: ✓ ünïcödé 日本語 テキスト\n"
    "\tindented with a tab; emoji 🐍🚀\r\n"
    "ends without a newline: ß€"
).encode()

KEY_RE = "[" + re.escape(KEY_ALPHABET) + "]{12}"
TOKEN_RE = "[A-Za-z0-9_-]{22}"  # secrets.token_urlsafe(16)


def run(args: list[str], *, input: bytes | None = b"", timeout: float = CLIENT_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=input, capture_output=True, timeout=timeout)


def assert_one_url(stdout: bytes, server, name_re: str = KEY_RE) -> str:
    """The whole client output is exactly one ``URL\\n`` line; return the URL."""
    pattern = re.escape(f"{server.base_url}/").encode() + name_re.encode() + b"\n"
    assert re.fullmatch(pattern, stdout), stdout
    return stdout.decode().rstrip("\n")


def curl(tmp_path: Path, *args: str, input: bytes | None = None) -> Reply:
    """Run real curl; status, last response's headers (lower-cased) and body bytes."""
    head_file = tmp_path / "curl-head"
    body_file = tmp_path / "curl-body"
    for f in (head_file, body_file):
        f.unlink(missing_ok=True)
    done = subprocess.run(
        ["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT_S), "-D", str(head_file), "-o", str(body_file),
         "-w", "%{http_code}", *args],
        input=input, capture_output=True, timeout=CLIENT_TIMEOUT_S + 5,
    )
    assert done.returncode == 0, done.stderr
    # -D records every response (a 100 Continue first, for instance): keep the last.
    blocks = [b for b in head_file.read_bytes().split(b"\r\n\r\n") if b.strip()]
    headers: dict[str, str] = {}
    for line in blocks[-1].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = body_file.read_bytes() if body_file.exists() else b""
    return Reply(int(done.stdout), headers, body)


def get(url: str) -> bytes:
    """``curl -s URL``: the bytes a user would see."""
    done = run(["curl", "-s", "--max-time", str(CLIENT_TIMEOUT_S), "--fail", url], input=None)
    assert done.returncode == 0, (url, done.returncode, done.stderr)
    return done.stdout


def seconds_until(http_date: str) -> float:
    return parsedate_to_datetime(http_date).timestamp() - time.time()


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "paste.txt"
    path.write_bytes(TEXT)
    return path


# -- netcat clients --------------------------------------------------------------

# Clients that half-close when their input ends: the URL must come on FIN.
HALF_CLOSE_CLIENTS = {
    "nc -N": lambda port: ["nc", "-N", "127.0.0.1", str(port)],
    "nc.traditional -q1": lambda port: ["nc.traditional", "-q1", "127.0.0.1", str(port)],
    "ncat": lambda port: ["ncat", "127.0.0.1", str(port)],
    "socat": lambda port: ["socat", "-", f"TCP:127.0.0.1:{port}"],
}


@pytest.mark.parametrize("client", list(HALF_CLOSE_CLIENTS))
def test_half_closing_client_gets_url_on_end_of_input(cli_server, client):
    # The idle timeout is a minute: only the half-close can end this paste in time.
    server = cli_server("--idle-timeout", LONG_IDLE)
    done = run(HALF_CLOSE_CLIENTS[client](server.tcp_port), input=TEXT)
    assert done.returncode == 0, done.stderr
    url = assert_one_url(done.stdout, server)
    assert get(url) == TEXT


def test_plain_nc_gets_url_after_idle_gap(cli_server):
    """OpenBSD nc without -N never half-closes: the idle timeout ends the paste."""
    server = cli_server("--idle-timeout", SHORT_IDLE)
    done = run(["nc", "127.0.0.1", str(server.tcp_port)], input=TEXT)
    assert done.returncode == 0, done.stderr
    url = assert_one_url(done.stdout, server)
    assert get(url) == TEXT


def test_bash_dev_tcp_gets_url_after_idle_gap(cli_server, text_file):
    server = cli_server("--idle-timeout", SHORT_IDLE)
    script = f'exec 3<>/dev/tcp/127.0.0.1/{server.tcp_port}; cat "$1" >&3; cat <&3'
    done = run(["bash", "-c", script, "bash", str(text_file)], input=None)
    assert done.returncode == 0, done.stderr
    url = assert_one_url(done.stdout, server)
    assert get(url) == TEXT


def test_options_line_alias_token_and_delete(cli_server, text_file, tmp_path):
    server = cli_server("--idle-timeout", LONG_IDLE)
    script = (
        "(echo '#!ncpaste expire=1h alias=build-42 token=1'; cat \"$1\") "
        f"| nc -N 127.0.0.1 {server.tcp_port}"
    )
    done = run(["bash", "-c", script, "bash", str(text_file)], input=None)
    assert done.returncode == 0, done.stderr
    pattern = re.escape(f"{server.base_url}/build-42\ntoken: ").encode() + f"({TOKEN_RE})\n".encode()
    match = re.fullmatch(pattern, done.stdout)
    assert match, done.stdout
    token = match.group(1).decode()
    url = f"{server.base_url}/build-42"

    # The options line is not part of the paste; the expiry is the hour asked for.
    read = curl(tmp_path, url)
    assert (read.status, read.body) == (200, TEXT)
    assert 3600 - 120 < seconds_until(read.headers["x-expires"]) <= 3600

    wrong = curl(tmp_path, "-X", "DELETE", "-H", "X-Delete-Token: not-the-token", url)
    assert wrong.status == 403
    assert curl(tmp_path, url).body == TEXT

    deleted = curl(tmp_path, "-X", "DELETE", "-H", f"X-Delete-Token: {token}", url)
    assert (deleted.status, deleted.body) == (204, b"")
    assert curl(tmp_path, url).status == 404
    assert curl(tmp_path, "-X", "DELETE", "-H", f"X-Delete-Token: {token}", url).status == 404


# -- errors, as printed by real nc ----------------------------------------------------

@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param(b"", "error: empty paste", id="empty"),
        pytest.param(b"a\0b", "error: not text: NUL byte at byte 1 (line 1)", id="nul"),
        pytest.param("ok ✓\n".encode() + b"b\xffad\n", "error: not text: invalid UTF-8 at byte 8 (line 2)",
                     id="invalid-utf8"),
        pytest.param(b"#!ncpaste frobnicate=1\n" + TEXT, "error: unknown option 'frobnicate'", id="bad-option"),
    ],
)
def test_nc_prints_error_line(cli_server, sent, expected):
    server = cli_server("--idle-timeout", LONG_IDLE)
    done = run(["nc", "-N", "127.0.0.1", str(server.tcp_port)], input=sent)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.startswith(expected.encode()), done.stdout
    assert done.stdout.endswith(b"\n") and done.stdout.count(b"\n") == 1, done.stdout
    assert b"http" not in done.stdout


def test_nc_too_large_prints_error_not_reset(cli_server):
    server = cli_server("--idle-timeout", LONG_IDLE, "--max-size", "1KiB")
    line = "log line with ünïcödé ✓ " * 3 + "\n"
    big = (line * (200 * 1024 // len(line.encode()) + 1)).encode()[: 200 * 1024]
    done = run(["nc", "-N", "127.0.0.1", str(server.tcp_port)], input=big)
    # A reset would make nc fail or print nothing; the user must see why.
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.startswith(b"error: paste too large"), done.stdout
    assert b"1 KiB" in done.stdout
    assert done.stdout.count(b"\n") == 1 and done.stdout.endswith(b"\n")


def test_nc_alias_taken_keeps_first_paste(cli_server):
    server = cli_server("--idle-timeout", LONG_IDLE)
    nc = ["nc", "-N", "127.0.0.1", str(server.tcp_port)]
    first = run(nc, input=b"#!ncpaste alias=dup-alias\n" + TEXT)
    url = assert_one_url(first.stdout, server, name_re="dup-alias")
    second = run(nc, input=b"#!ncpaste alias=dup-alias\nsomething else\n")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(b"error: alias 'dup-alias' is taken"), second.stdout
    assert second.stdout.count(b"\n") == 1
    assert get(url) == TEXT


# -- curl ------------------------------------------------------------------------

def test_curl_data_binary(cli_server, text_file, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "--data-binary", f"@{text_file}", f"{server.base_url}/")
    assert created.status == 201
    url = assert_one_url(created.body, server)
    assert created.headers["location"] == url
    assert re.fullmatch(TOKEN_RE, created.headers["x-delete-token"])
    assert get(url) == TEXT


def test_curl_form_file(cli_server, text_file, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "-F", f"f=@{text_file}", f"{server.base_url}/")
    assert created.status == 201
    assert get(assert_one_url(created.body, server)) == TEXT


def test_curl_form_from_stdin(cli_server, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "-F", "f=<-", f"{server.base_url}/", input=TEXT)
    assert created.status == 201
    assert get(assert_one_url(created.body, server)) == TEXT


def test_curl_put_creates_alias(cli_server, text_file, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "-T", str(text_file), f"{server.base_url}/myalias")
    assert created.status == 201
    url = assert_one_url(created.body, server, name_re="myalias")
    assert get(url) == TEXT
    again = curl(tmp_path, "-T", str(text_file), f"{server.base_url}/myalias")
    assert again.status == 409


def test_curl_burn_after_reading(cli_server, text_file, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "--data-binary", f"@{text_file}", f"{server.base_url}/?expire=1h&burn=1")
    assert created.status == 201
    assert 3600 - 120 < seconds_until(created.headers["x-expires"]) <= 3600
    url = assert_one_url(created.body, server)
    first = curl(tmp_path, url)
    assert (first.status, first.body) == (200, TEXT)
    assert curl(tmp_path, url).status == 404


def test_curl_range_tail(cli_server, text_file, tmp_path):
    server = cli_server()
    url = assert_one_url(curl(tmp_path, "--data-binary", f"@{text_file}", f"{server.base_url}/").body, server)
    tail = curl(tmp_path, "-H", "Range: bytes=-5", url)
    assert tail.status == 206
    assert tail.body == TEXT[-5:]
    assert tail.headers["content-range"] == f"bytes {len(TEXT) - 5}-{len(TEXT) - 1}/{len(TEXT)}"


def test_curl_head(cli_server, text_file, tmp_path):
    server = cli_server()
    url = assert_one_url(curl(tmp_path, "--data-binary", f"@{text_file}", f"{server.base_url}/").body, server)
    head = curl(tmp_path, "-I", url)
    assert head.status == 200
    assert head.headers["content-length"] == str(len(TEXT))
    assert head.headers["content-type"] == "text/plain; charset=utf-8"
    assert head.headers["x-content-type-options"] == "nosniff"
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["etag"].startswith('"')
    # HEAD of a normal paste does not consume or change it.
    assert get(url) == TEXT


def test_curl_form_with_option_field(cli_server, text_file, tmp_path):
    server = cli_server()
    created = curl(tmp_path, "-F", "expire=1h", "-F", f"f=@{text_file}", f"{server.base_url}/")
    assert created.status == 201
    assert 3600 - 120 < seconds_until(created.headers["x-expires"]) <= 3600
    url = assert_one_url(created.body, server)
    assert get(url) == TEXT
    assert 3600 - 120 < seconds_until(curl(tmp_path, "-I", url).headers["x-expires"]) <= 3600


def test_curl_form_with_an_unknown_field_names_it(cli_server, text_file, tmp_path):
    server = cli_server()
    refused = curl(tmp_path, "-F", "colour=1", "-F", f"f=@{text_file}", f"{server.base_url}/")
    assert refused.status == 400
    assert refused.body == (
        b"error: unknown option 'colour': known options are expire, alias, burn, token, redact\n"
    )


def test_curl_expect_100_continue_gets_a_reason_phrase(cli_server, text_file, tmp_path):
    server = cli_server()
    head_file = tmp_path / "heads"
    done = run(
        ["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT_S), "-D", str(head_file), "-H", "Expect: 100-continue",
         "--data-binary", f"@{text_file}", f"{server.base_url}/"],
        input=None,
    )
    assert done.returncode == 0, done.stderr
    assert head_file.read_bytes().startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")


# -- a big paste -------------------------------------------------------------------

def _big_text(size: int) -> bytes:
    lines = []
    n = 0
    total = 0
    while total < size:
        line = f"{n:07d} build step ✓ ünïcödé 日本語 {'x' * (n % 61)}\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size].rsplit(b"\n", 1)[0] + b"\n"


@pytest.mark.parametrize("client", ["nc -N", "curl --data-binary"])
def test_three_mib_round_trip(cli_server, tmp_path, client):
    server = cli_server("--idle-timeout", LONG_IDLE)
    big = _big_text(3 * 1024 * 1024)
    assert len(big) > 3 * 1024 * 1024 - 200
    if client == "nc -N":
        done = run(["nc", "-N", "127.0.0.1", str(server.tcp_port)], input=big)
        assert done.returncode == 0, done.stderr
        url = assert_one_url(done.stdout, server)
    else:
        path = tmp_path / "big.txt"
        path.write_bytes(big)
        created = curl(tmp_path, "--data-binary", f"@{path}", f"{server.base_url}/")
        assert created.status == 201
        url = assert_one_url(created.body, server)
    got = get(url)
    assert len(got) == len(big)
    assert got == big


def test_live_port_with_real_nc_and_curl_following(cli_server):
    """`job | nc -N HOST 9998` prints the URL first; `curl -N URL` follows
    the log and exits when the job ends."""

    server = cli_server("--limits", "off")
    job = subprocess.Popen(
        ["bash", "-c", f"for i in 1 2 3; do echo step $i; sleep 0.4; done | nc -N 127.0.0.1 {server.live_port}"],
        stdout=subprocess.PIPE,
    )
    url = job.stdout.readline().decode().strip()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{server.http_port}/[A-Za-z0-9]+", url), url
    follower = subprocess.run(["curl", "-sN", url], capture_output=True, timeout=30)
    assert follower.returncode == 0
    assert follower.stdout == b"step 1\nstep 2\nstep 3\n"
    assert job.wait(timeout=30) == 0
    done = subprocess.run(["curl", "-si", url], capture_output=True, timeout=30).stdout
    assert b"x-paste-state: complete" in done.lower()
