"""The shipped load balancer configs in front of real ncpaste nodes.

``deploy/haproxy.cfg`` itself runs in front of two real ``ncpaste serve``
nodes on one bucket of a real engine (SeaweedFS): pastes and reads through the
balancer, the client address seen through PROXY v2 and X-Forwarded-For, a
node killed with -9, a store outage, and live pastes. ``deploy/nginx.conf`` is
checked with ``nginx -t`` and run the same way for pastes, reads, live
pastes and a killed node. The test copies differ from the shipped files only where a test must:
addresses and ports, the balancer's source address, fast health checks, and
running in the foreground without chroot, pid or log files outside tmp_path
(``haproxy_config`` and ``nginx_config``; each substitution fails the test if
the shipped line it expects is gone).

Addresses: everything is on loopback, but not on one address. The balancer
connects to the nodes from ``PROXY_IP`` (the nodes' only ``--trusted-proxy``)
and the test's clients connect from ``CLIENT_IP``, so a node can only log
``client=127.0.0.3`` if it read that from a PROXY header or X-Forwarded-For.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import zstandard

from conftest import REPO, S3_BUCKET, CliServer, free_port, hang_guard, key_of, paste_blocking, s3_url
from engines import Daemon, _spawn

pytestmark = pytest.mark.slow

HAPROXY_CFG = REPO / "deploy" / "haproxy.cfg"
NGINX_CONF = REPO / "deploy" / "nginx.conf"

#: The balancer's source address towards the nodes: their one trusted proxy.
PROXY_IP = "127.0.0.2"
#: Where the test's clients connect from.
CLIENT_IP = "127.0.0.3"
#: Upper bound of a test's body, the balancer's start included (the nodes and
#: the engine start in fixtures, each with its own deadline).
TEST_BOUND_S = 120
#: Bound on one client exchange.
IO_TIMEOUT_S = 20
#: Health checks in the test copy: every 200 ms, 2 failures mark a node down.
FAST_CHECKS = "inter 200ms fall 2 rise 1"

#: The node port behind each port the shipped configs name.
PORT_KIND = {9999: "tcp", 9998: "live", 8080: "http"}

# Multi-line UTF-8 with 2-, 3- and 4-byte characters, a tab and a CRLF.
TEXT = "héllo wörld ✓ 日本語 🐍\tok\r\n"


def _loopback_aliases_work() -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((CLIENT_IP, 0))
        return True
    except OSError:
        return False


needs_loopback_aliases = pytest.mark.skipif(
    not _loopback_aliases_work(), reason=f"cannot bind {CLIENT_IP} (needs Linux's 127.0.0.0/8 on lo)"
)
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy is not on PATH (apt-get install haproxy)"
)
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not on PATH (apt-get install nginx)")


# -- rendering the shipped files for the test -------------------------------------


def _sub(text: str, pattern: str, repl, what: str, count: int | None = None) -> str:  # type: ignore[no-untyped-def]
    """re.sub that fails loudly when the shipped file no longer has the line."""
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    assert n and (count is None or n == count), f"{what}: {n} matches of {pattern!r} in the shipped config"
    return new


def _node_address(nodes: list[CliServer], index: int, port: int) -> str | None:
    if index >= len(nodes):
        return None
    node = nodes[index]
    return f"127.0.0.1:{getattr(node, PORT_KIND[port] + '_port')}"


def _servers(text: str, nodes: list[CliServer], line_re: str) -> str:
    """Point each server line at 10.0.0.(11+i):PORT to node i's port of that
    kind; drop the lines of nodes the test does not have."""

    def server(match: re.Match[str]) -> str:
        address = _node_address(nodes, int(match["host"]) - 11, int(match["port"]))
        return "" if address is None else f"{match['head']}{address}{match['tail']}\n"

    return _sub(text, line_re, server, "server lines")


def haproxy_config(nodes: list[CliServer], ports: dict[str, int], *, check: str = FAST_CHECKS) -> str:
    text = HAPROXY_CFG.read_text()
    # Run in the foreground as the test's child, logging to its stdout.
    text = _sub(text, r"^\s*(chroot|user|group|daemon|stats socket)\b.*\n", "", "daemon lines", 5)
    text = _sub(text, r"^(\s*)log /dev/log (\S+)$", r"\1log stdout format raw \2", "log line", 1)
    # 20000 connections need 40000 descriptors, more than a container may grant.
    text = _sub(text, r"^(\s*)maxconn \d+$", r"\1maxconn 1000", "maxconn", 1)
    text = _sub(text, r"^(\s*default-server) inter \S+ fall \d+ rise \d+$", rf"\1 {check}", "check timing", 1)
    text = _sub(text, r"^defaults\n", f"defaults\n    source {PROXY_IP}\n", "defaults", 1)
    for kind, port in (("tcp", 9999), ("live", 9998), ("http", 8080)):
        text = _sub(text, rf"^(\s*)bind :{port}$", rf"\g<1>bind 127.0.0.1:{ports[kind]}", f"bind :{port}", 1)
    text = _sub(text, r"^(\s*)bind 127\.0\.0\.1:8404$", rf"\g<1>bind 127.0.0.1:{ports['stats']}", "stats bind", 1)
    text = _servers(text, nodes, r"^(?P<head>\s*server\s+\S+\s+)10\.0\.0\.(?P<host>\d+):(?P<port>\d+)(?P<tail>.*)\n")
    assert "10.0.0." not in re.sub(r"#.*", "", text)
    return text


def nginx_config(tmp: Path, nodes: list[CliServer] | None = None, ports: dict[str, int] | None = None) -> str:
    """The shipped nginx.conf with every path under ``tmp``; with nodes and
    ports also its listeners and upstreams (else they stay as shipped, which
    ``nginx -t`` does not bind)."""
    text = NGINX_CONF.read_text()
    # Workers as root when the test is root: they must reach files under tmp.
    text = _sub(text, r"^user \S+;\n", "user root;\n" if os.geteuid() == 0 else "", "user", 1)
    text = _sub(text, r"^pid \S+;$", f"pid {tmp}/nginx.pid;", "pid", 1)
    text = _sub(text, r"^error_log \S+;$", f"error_log {tmp}/error.log;", "error_log", 1)
    text = _sub(text, r"^(\s*)access_log /var/log/nginx/(\S+)", rf"\1access_log {tmp}/\2", "access_log", 2)
    text = _sub(text, r"^worker_processes auto;$", "worker_processes 1;", "worker_processes", 1)
    temp = "".join(
        f"    {kind}_temp_path {tmp}/temp-{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _sub(text, r"^http \{\n", "http {\n" + temp, "http block", 1)
    text = _sub(text, r"proxy_cache_path /var/cache/nginx/ncpaste ", f"proxy_cache_path {tmp}/read-cache ", "cache path", 1)
    if nodes is None or ports is None:
        return text
    for kind, port in (("tcp", 9999), ("live", 9998), ("http", 8080)):
        text = _sub(text, rf"^(\s*)listen {port}\b", rf"\g<1>listen 127.0.0.1:{ports[kind]}", f"listen {port}", 1)
    for block in ("stream", "http"):
        text = _sub(text, rf"^{block} \{{\n", f"{block} {{\n    proxy_bind {PROXY_IP};\n", f"{block} block", 1)
    text = _servers(text, nodes, r"^(?P<head>\s*server\s+)10\.0\.0\.(?P<host>\d+):(?P<port>\d+)(?P<tail>.*)\n")
    assert "10.0.0." not in re.sub(r"#.*", "", text)
    return text


# -- running a balancer -------------------------------------------------------------


@dataclass
class Balancer:
    daemon: Daemon
    ports: dict[str, int]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def log_text(self) -> str:
        return self.daemon.log_tail(20000)

    def states(self) -> dict[tuple[str, str], str]:
        """HAProxy's view of each server: (backend, server) -> UP, DOWN, no check, ..."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["stats"], timeout=5)
        try:
            conn.request("GET", "/stats;csv")
            lines = conn.getresponse().read().decode().splitlines()
        finally:
            conn.close()
        header = lines[0].lstrip("# ").split(",")
        at = {name: i for i, name in enumerate(header)}
        states = {}
        for line in lines[1:]:
            row = line.split(",")
            if len(row) > at["status"] and row[at["svname"]] not in ("FRONTEND", "BACKEND"):
                states[(row[at["pxname"]], row[at["svname"]])] = row[at["status"]]
        return states

    def wait_for(self, want: dict[str, str], timeout_s: float = 15.0) -> None:
        """Wait until each named server is in the wanted state in all three
        backends (the netcat and live ones track the HTTP one)."""
        deadline = time.monotonic() + timeout_s
        states: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            try:
                states = self.states()
            except OSError:
                states = {}
            else:
                if all(
                    states.get((backend, server), "").startswith(state)
                    for server, state in want.items()
                    for backend in ("http_nodes", "netcat_nodes", "live_nodes")
                ):
                    return
            time.sleep(0.05)
        raise AssertionError(f"servers not {want} within {timeout_s} s: {states}\n{self.log_text()[-3000:]}")


def diagnosis(balancer: Balancer | None, nodes: list[CliServer]) -> str:
    """For assertion messages: the ends of the balancer's and the nodes' logs
    (without the health check lines)."""
    parts = [f"--- balancer log:\n{balancer.log_text()[-3000:]}"] if balancer is not None else []
    for node in nodes:
        lines = [line for line in node.log_text().splitlines() if "route=healthz" not in line and "HTTP Request" not in line]
        parts.append(f"--- node {node.tcp_port} log:\n" + "\n".join(lines[-40:]))
    return "\n".join(parts)


def balancer_ports() -> dict[str, int]:
    return {kind: free_port() for kind in ("tcp", "live", "http", "stats")}


@contextmanager
def running_haproxy(tmp_path: Path, nodes: list[CliServer], ports: dict[str, int]) -> Iterator[Balancer]:
    """The shipped haproxy.cfg for these nodes: checked with ``haproxy -c``,
    started in the foreground, stopped (and reaped) on the way out."""
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(nodes, ports))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], check=False, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    daemon = _spawn("haproxy", ["haproxy", "-db", "-f", str(config)], tmp_path / "haproxy.log")
    try:
        balancer = Balancer(daemon, ports)
        balancer.wait_for({f"node{i + 1}": "UP" for i in range(len(nodes))})
        yield balancer
    finally:
        daemon.stop(grace_s=5)


def nginx_test(config: Path, tmp: Path) -> str:
    """``nginx -t`` of a config; its output. Skips the test when this nginx
    has no stream module (Debian ships it apart from nginx)."""
    check = subprocess.run(
        ["nginx", "-t", "-c", str(config), "-e", str(tmp / "error.log")],
        check=False, capture_output=True, text=True, timeout=30,
    )
    output = check.stdout + check.stderr
    if 'unknown directive "stream"' in output:
        pytest.skip("nginx has no stream module (apt-get install libnginx-mod-stream)")
    assert check.returncode == 0 and "test is successful" in output, output
    return output


@contextmanager
def running_nginx(tmp_path: Path, nodes: list[CliServer], ports: dict[str, int]) -> Iterator[Daemon]:
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config(tmp_path, nodes, ports))
    nginx_test(config, tmp_path)  # skips without the stream module
    argv = ["nginx", "-c", str(config), "-e", str(tmp_path / "error.log")]
    daemon = _spawn("nginx", [*argv, "-g", "daemon off;"], tmp_path / "nginx.out")
    try:
        deadline = time.monotonic() + 15
        while not _listening(ports["http"]):
            assert daemon.alive() and time.monotonic() < deadline, (tmp_path / "error.log").read_text()[-3000:]
            time.sleep(0.05)
        yield daemon
    finally:
        daemon.stop(grace_s=5)


def _listening(port: int) -> bool:
    """Whether something accepts on the port (an HTTP port: a bare connect
    costs nothing there)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# -- clients, from CLIENT_IP ---------------------------------------------------------


def client_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S, source_address=(CLIENT_IP, 0))
    return sock


def nc_paste(port: int, body: bytes) -> bytes:
    """What ``nc -N`` does, from CLIENT_IP."""
    return paste_blocking(port, body, timeout_s=IO_TIMEOUT_S, source_ip=CLIENT_IP)


def first_line(port: int) -> bytes:
    """Connect and read the server's first line, sending nothing: what a live
    writer sees before its job prints anything. (Not a bare connect-and-FIN:
    HAProxy may drop a connection whose client half-closes before sending a
    byte, before ever choosing a node.)"""
    with client_socket(port) as sock:
        line = b""
        while not line.endswith(b"\n") and (got := sock.recv(1)):
            line += got
        return line


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
    *, source: str = CLIENT_IP,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT_S, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def get(port: int, path: str, *, source: str = CLIENT_IP) -> tuple[int, bytes]:
    status, _, body = request(port, "GET", path, source=source)
    return status, body


def direct_get(node: CliServer, key: str) -> tuple[int, bytes]:
    """Straight from a node, bypassing the balancer."""
    return get(node.http_port, "/" + key, source="127.0.0.1")


def paste_body(tag: str, lines: int = 3000) -> bytes:
    return "".join(f"{tag} line {i}: {TEXT}" for i in range(lines)).encode()


def created_by(node: CliServer, key: str, port: str = "tcp") -> str | None:
    """The client a node logged for the paste it created under ``key``."""
    match = re.search(rf"paste\.created key={re.escape(key)} port={port} \S+ client=(\S+)", node.log_text())
    return match[1] if match else None


def wait_for_log(nodes: list[CliServer], pattern: str, timeout_s: float = 10.0) -> str:
    """The nodes' logs, once one of them has a line matching ``pattern``."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = "".join(node.log_text() for node in nodes)
        if re.search(pattern, logs):
            return logs
        assert time.monotonic() < deadline, f"no log line like {pattern!r}:\n{diagnosis(None, nodes)}"
        time.sleep(0.05)


class LiveWriter:
    """A live paste writer (``long-job | nc -N HOST 9998``) from CLIENT_IP."""

    def __init__(self, port: int, preamble: bytes = b"") -> None:
        self.sock = client_socket(port)
        if preamble:
            self.sock.sendall(preamble)
        self.url = self.readline()

    def readline(self) -> str:
        line = b""
        while not line.endswith(b"\n"):
            got = self.sock.recv(1)
            assert got, f"closed inside a reply line: {line!r}"
            line += got
        return line.decode().strip()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def finish(self) -> bytes:
        """Half-close; what the server sends until it closes."""
        self.sock.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := self.sock.recv(65536):
            rest += chunk
        self.sock.close()
        return rest


class LiveReader:
    """``curl -N URL`` on an open live paste, raw, so each piece is seen as it comes."""

    def __init__(self, port: int, key: str) -> None:
        self.sock = client_socket(port)
        self.sock.sendall(f"GET /{key} HTTP/1.1\r\nHost: paste\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            got = self.sock.recv(65536)
            assert got, f"closed before the response head: {data!r}"
            data += got
        head, self.raw = data.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1").lower()

    def body(self) -> tuple[bytes, bool]:
        """The body so far, and whether the last chunk came."""
        body, pos = b"", 0
        while True:
            end = self.raw.find(b"\r\n", pos)
            if end < 0:
                return body, False
            size = int(self.raw[pos:end], 16)
            if size == 0:
                return body, True
            if len(self.raw) < end + 2 + size + 2:
                return body, False
            body += self.raw[end + 2 : end + 2 + size]
            pos = end + 2 + size + 2

    def wait_for(self, want: bytes) -> bytes:
        while want not in self.body()[0]:
            got = self.sock.recv(65536)
            assert got, f"reader closed before {want!r} arrived: {self.raw[-500:]!r}"
            self.raw += got
        return self.body()[0]

    def wait_for_end(self) -> bytes:
        while not self.body()[1]:
            got = self.sock.recv(65536)
            assert got, f"reader closed before the last chunk: {self.raw[-500:]!r}"
            self.raw += got
        self.sock.close()
        return self.body()[0]


def live_paste_through(balancer_ports: dict[str, int], nodes: list[CliServer], base_url: str) -> None:
    """A live paste written through the balancer's live port, followed
    through its HTTP port as it grows, then complete everywhere."""
    writer = LiveWriter(balancer_ports["live"])
    # The URL comes first, before any byte of the job, and names the public URL.
    assert re.fullmatch(re.escape(base_url) + r"/[A-Za-z0-9]{12}", writer.url), writer.url
    key = key_of(writer.url)
    writer.send(b"compiling... " + TEXT.encode())
    reader = LiveReader(balancer_ports["http"], key)
    assert reader.head.startswith("http/1.1 200 "), reader.head
    assert "transfer-encoding: chunked" in reader.head and "x-paste-state: open" in reader.head, reader.head
    reader.wait_for(b"compiling... ")
    big = paste_body("test output", 2000)  # past the 256 KiB in-memory tail
    writer.send(big)
    reader.wait_for(big[-100:])
    writer.send(b"tests passed\n")
    reader.wait_for(b"tests passed\n")
    assert writer.finish() == b""  # a clean end: the writer gets nothing more
    whole = b"compiling... " + TEXT.encode() + big + b"tests passed\n"
    assert reader.wait_for_end() == whole
    status, headers, body = request(balancer_ports["http"], "GET", "/" + key)
    assert (status, body) == (200, whole) and headers["x-paste-state"] == "complete"
    for node in nodes:
        assert direct_get(node, key) == (200, whole), node.http_port
    assert [created_by(node, key, "live") for node in nodes].count(CLIENT_IP) == 1


# -- the shipped files, as shipped ----------------------------------------------------


@needs_haproxy
def test_shipped_haproxy_config_is_valid() -> None:
    check = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], check=False, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "WARNING" not in check.stdout + check.stderr, check.stdout + check.stderr


@needs_nginx
def test_shipped_nginx_config_is_valid(tmp_path: Path) -> None:
    """As shipped but for its paths (pid, logs, temp files), so ``nginx -t``
    touches nothing outside tmp_path."""
    config = tmp_path / "nginx.conf"
    config.write_text(nginx_config(tmp_path))
    output = nginx_test(config, tmp_path)
    assert "[warn]" not in output and "[emerg]" not in output, output


# -- HAProxy in front of real nodes ---------------------------------------------------


@pytest.fixture
def two_nodes(s3_env, cli_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two nodes on one bucket, trusting only the balancer's address, with
    per-client limits on (as in public), handing out the balancer's URL; and
    the balancer's ports."""
    return behind_balancer(s3_env, cli_server, tmp_path, "--limits", "on")


def behind_balancer(s3_env, cli_server, tmp_path: Path, *flags: str):  # type: ignore[no-untyped-def]
    """Nodes a and b on one bucket, trusting only the balancer's address and
    handing out its URL, with ``flags``; and the balancer's ports."""
    ports = balancer_ports()
    store = s3_url(s3_env)  # one prefix for both (each call makes a new one)
    nodes = [
        cli_server(
            "--store", store, "--trusted-proxy", f"{PROXY_IP}/32",
            "--url", f"http://127.0.0.1:{ports['http']}", *flags,
            data_dir=tmp_path / f"node-{name}",
        )
        for name in "ab"
    ]
    return nodes, ports


@needs_haproxy
@needs_loopback_aliases
def test_pastes_through_haproxy_read_back_everywhere_and_nodes_see_the_client(two_nodes, tmp_path: Path) -> None:
    nodes, ports = two_nodes
    with hang_guard(TEST_BOUND_S), running_haproxy(tmp_path, nodes, ports) as lb:
        keys: dict[str, bytes] = {}
        for i in range(4):
            body = paste_body(f"paste {i}")
            reply = nc_paste(ports["tcp"], b"#!ncpaste expire=1h\n" + body)
            # One line, the public URL (every node has --url set to it).
            assert re.fullmatch(re.escape(lb.base_url) + r"/[A-Za-z0-9]{12}\n", reply.decode()), reply
            keys[key_of(reply)] = body
        for key, body in keys.items():
            assert get(ports["http"], "/" + key) == (200, body)
            for node in nodes:
                assert direct_get(node, key) == (200, body), (node.http_port, key)
        # The PROXY v2 header: each paste was logged by one node, with the
        # client's address, although the node's peer was the balancer.
        for key in keys:
            assert [created_by(node, key) for node in nodes].count(CLIENT_IP) == 1, key
        # leastconn round-robins between equally loaded nodes: both took pastes.
        assert all(any(created_by(node, key) for key in keys) for node in nodes)

        # HTTP: X-Forwarded-For appended by the balancer; what the client
        # claims in its own header is not believed.
        spoof = {"X-Forwarded-For": "203.0.113.66"}
        status, headers, reply = request(ports["http"], "POST", "/", b"via HTTP " + TEXT.encode(), spoof)
        assert status == 201 and reply.decode().startswith(lb.base_url + "/"), (status, reply)
        key = key_of(reply)
        assert headers["location"] == reply.decode().strip()
        status, _, body = request(ports["http"], "GET", "/" + key, headers=spoof)
        assert (status, body) == (200, b"via HTTP " + TEXT.encode())
        assert [created_by(node, key, "http") for node in nodes].count(CLIENT_IP) == 1
        # (A request's log line comes after its response: wait for it.)
        logs = wait_for_log(nodes, rf"http\.request client={re.escape(CLIENT_IP)} method=GET route=read key={key} status=200")
        assert "203.0.113.66" not in logs
        # Health checks come from the balancer itself (no header: its own address).
        assert f"http.request client={PROXY_IP} method=GET route=healthz" in logs


@needs_haproxy
@needs_loopback_aliases
def test_a_node_that_does_not_trust_the_balancer_refuses_its_proxy_header(cli_server, tmp_path: Path) -> None:
    """What a node started without --trusted-proxy says behind the balancer
    (proof, too, that the balancer really sends the header)."""
    ports = balancer_ports()
    node = cli_server("--limits", "on", data_dir=tmp_path / "node")
    with hang_guard(TEST_BOUND_S), running_haproxy(tmp_path, [node], ports):
        refusal = b"error: PROXY protocol header from an address that is not a trusted proxy\n"
        assert nc_paste(ports["tcp"], b"hello\n") == refusal
        assert first_line(ports["live"]) == refusal
        # HTTP still works, but the node takes the balancer for the client:
        # every client would share one set of per-client limits.
        status, _, reply = request(ports["http"], "POST", "/", b"hello\n")
        assert status == 201
        assert created_by(node, key_of(reply), "http") == PROXY_IP


@needs_haproxy
@needs_loopback_aliases
def test_a_killed_node_is_taken_out_and_pastes_and_reads_go_on(two_nodes, tmp_path: Path) -> None:
    nodes, ports = two_nodes
    a, b = nodes
    with hang_guard(TEST_BOUND_S), running_haproxy(tmp_path, nodes, ports) as lb:
        before = {}
        for i in range(4):
            body = paste_body(f"before {i}", 200)
            before[key_of(nc_paste(ports["tcp"], body))] = body
        assert any(created_by(a, key) for key in before), "node A took none of the pastes"

        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=10)
        killed_at = time.monotonic()
        # Before the checks notice: a refused connection is retried on the
        # other node (retries + redispatch), so no paste fails meanwhile.
        for _ in range(3):
            reply = nc_paste(ports["tcp"], b"right after the kill\n")
            assert reply.startswith(lb.base_url.encode() + b"/"), reply
        lb.wait_for({"node1": "DOWN", "node2": "UP"}, timeout_s=10)
        noticed_s = time.monotonic() - killed_at
        assert noticed_s < 5, f"the health check took {noticed_s:.1f} s to take the node out"

        for key, body in before.items():  # written through either node: all in the shared store
            assert get(ports["http"], "/" + key) == (200, body), key
        after = {}
        for i in range(6):
            body = paste_body(f"after {i}", 200)
            after[key_of(nc_paste(ports["tcp"], body))] = body
        status, _, reply = request(ports["http"], "POST", "/", b"posted after the kill\n")
        assert status == 201, reply
        after[key_of(reply)] = b"posted after the kill\n"
        for key, body in after.items():
            assert get(ports["http"], "/" + key) == (200, body), key
            assert direct_get(b, key) == (200, body), key
        live_paste_through(ports, [b], lb.base_url)


@needs_haproxy
@needs_loopback_aliases
def test_live_paste_through_haproxy(two_nodes, tmp_path: Path) -> None:
    nodes, ports = two_nodes
    with hang_guard(TEST_BOUND_S), running_haproxy(tmp_path, nodes, ports) as lb:
        live_paste_through(ports, nodes, lb.base_url)
        # An options line passes through too (sent at once, as `(echo ...; job) | nc` does).
        writer = LiveWriter(ports["live"], b"#!ncpaste expire=1h token=1\n")
        assert writer.url.startswith(lb.base_url + "/")
        token = writer.readline()
        assert token.startswith("token: "), token
        writer.send(b"with options\n")
        assert writer.finish() == b""
        key = key_of(writer.url)
        status, headers, body = request(ports["http"], "GET", "/" + key)
        assert (status, body) == (200, b"with options\n")
        expires_in = parsedate_to_datetime(headers["x-expires"]).timestamp() - time.time()
        assert 3500 < expires_in <= 3600, headers["x-expires"]  # expire=1h, counted from the end
        status, _, _ = request(ports["http"], "DELETE", "/" + key, headers={"X-Delete-Token": token[len("token: "):]})
        assert status == 204


@needs_haproxy
@needs_loopback_aliases
def test_a_store_outage_reaches_clients_as_ncpaste_errors(cli_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """When the shared store goes away every node fails its health check at
    once; the last-resort servers still pass traffic, so clients get
    ncpaste's one-line error instead of a closed connection (netcat) or
    HAProxy's HTML page (HTTP)."""
    from engines import start_seaweedfs

    engine = start_seaweedfs(tmp_path / "engine")
    try:
        engine.make_bucket(S3_BUCKET)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", engine.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", engine.secret_key)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        ports = balancer_ports()
        store = s3_url(engine)
        nodes = [
            cli_server("--store", store, "--trusted-proxy", f"{PROXY_IP}/32",
                       "--url", f"http://127.0.0.1:{ports['http']}", data_dir=tmp_path / f"node-{name}")
            for name in "ab"
        ]
        with hang_guard(TEST_BOUND_S), running_haproxy(tmp_path, nodes, ports) as lb:
            assert nc_paste(ports["tcp"], b"before the outage\n").startswith(lb.base_url.encode())
            engine.stop(grace_s=0)
            lb.wait_for({"node1": "DOWN", "node2": "DOWN"}, timeout_s=15)
            # All at once: each waits out the node's store retries (about 3 s).
            with ThreadPoolExecutor(4) as pool:
                netcat = pool.submit(nc_paste, ports["tcp"], b"during the outage\n")
                posted = pool.submit(request, ports["http"], "POST", "/", b"during the outage\n")
                health = pool.submit(request, ports["http"], "GET", "/healthz")
                live = pool.submit(first_line, ports["live"])
            assert netcat.result() == b"error: storage unavailable\n", diagnosis(lb, nodes)
            assert live.result() == b"error: storage unavailable\n", diagnosis(lb, nodes)
            for status, _, body in (posted.result(), health.result()):
                assert status == 503 and body.startswith(b"error: storage unavailable"), (status, body)
    finally:
        engine.stop(grace_s=0)


# -- nginx in front of real nodes ----------------------------------------------------


@needs_nginx
@needs_loopback_aliases
def test_pastes_and_live_pastes_through_nginx(two_nodes, tmp_path: Path) -> None:
    nodes, ports = two_nodes
    base_url = f"http://127.0.0.1:{ports['http']}"
    with hang_guard(TEST_BOUND_S), running_nginx(tmp_path, nodes, ports):
        keys = {}
        for i in range(4):
            body = paste_body(f"nginx {i}")
            reply = nc_paste(ports["tcp"], body)
            assert reply.decode().startswith(base_url + "/") and reply.count(b"\n") == 1, reply
            keys[key_of(reply)] = body
        for key, body in keys.items():
            assert get(ports["http"], "/" + key) == (200, body)
            for node in nodes:
                assert direct_get(node, key) == (200, body)
            # The PROXY v1 header named the client.
            assert [created_by(node, key) for node in nodes].count(CLIENT_IP) == 1, key
        spoof = {"X-Forwarded-For": "203.0.113.66"}
        status, _, reply = request(ports["http"], "POST", "/", b"via nginx\n", spoof)
        assert status == 201, reply
        assert [created_by(node, key_of(reply), "http") for node in nodes].count(CLIENT_IP) == 1
        assert "203.0.113.66" not in "".join(node.log_text() for node in nodes)
        live_paste_through(ports, nodes, base_url)
        # Far over the size limit: refused by nginx, as one text line.
        with client_socket(ports["http"]) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: paste\r\nContent-Length: 20000000\r\n\r\n")
            answer = b""
            while b"\n" not in answer.partition(b"\r\n\r\n")[2]:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert answer.endswith(b"\r\n\r\nerror: paste too large: the limit is 10 MiB\n"), answer

        # No active health checks in nginx: a node killed with -9 refuses
        # connections, and nginx passes each one on to the next node.
        a, b = nodes
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=10)
        after = {}
        for i in range(4):
            body = paste_body(f"nginx after the kill {i}", 200)
            reply = nc_paste(ports["tcp"], body)
            assert reply.decode().startswith(base_url + "/"), reply
            after[key_of(reply)] = body
        for key, body in after.items():
            assert get(ports["http"], "/" + key) == (200, body), key
            assert created_by(b, key) == CLIENT_IP, key
        for key, body in keys.items():  # read through A before: served by B now
            assert get(ports["http"], "/" + key) == (200, body), key
        live_paste_through(ports, [b], base_url)


# -- the read cache in the shipped nginx.conf ------------------------------------------

#: The nodes' --shared-cache-ttl in the cache tests (s-maxage): short, so the
#: delete bound is tested in seconds. Their own S3 read cache is off
#: (--store-cache-ttl 0.01, its least): with it, a node may answer a revalidation from a
#: copy that old, and the README adds it to the bound.
SHARED_TTL_S = 2
#: One poll step and one request on loopback, on top of the bound.
POLL_SLACK_S = 0.25


@pytest.fixture
def cached_nodes(s3_env, cli_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    return behind_balancer(
        s3_env, cli_server, tmp_path,
        "--limits", "off", "--shared-cache-ttl", str(SHARED_TTL_S), "--store-cache-ttl", "0.01",
    )


def cache_status(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    status, got, body = request(port, "GET", path, headers=headers)
    return status, got.get("x-cache-status", "-"), body


@needs_nginx
@needs_loopback_aliases
def test_nginx_read_cache_serves_hot_pastes_and_deletes_stay_deletes(cached_nodes, tmp_path: Path) -> None:
    nodes, ports = cached_nodes
    port = ports["http"]
    with hang_guard(TEST_BOUND_S), running_nginx(tmp_path, nodes, ports):
        body = paste_body("cached", 400)
        status, created, reply = request(port, "POST", "/", body)
        assert status == 201, reply
        key, token = key_of(reply), created["x-delete-token"]
        path = "/" + key

        # A hot paste: the first read fills the cache, the next ones are hits.
        assert cache_status(port, path) == (200, "MISS", body)
        assert cache_status(port, path) == (200, "HIT", body)
        # Another coding is another entry, never the plain copy mislabelled.
        status, headers, frame = request(port, "GET", path, headers={"Accept-Encoding": "zstd"})
        assert status == 200 and headers["content-encoding"] == "zstd", headers
        assert zstandard.ZstdDecompressor().decompress(frame) == body
        status, headers, plain = request(port, "GET", path)
        assert (status, headers.get("content-encoding"), plain) == (200, None, body)
        # Range, ?tail= and the HTML view work through it.
        status, headers, part = request(port, "GET", path, headers={"Range": "bytes=10-19"})
        assert (status, part) == (206, body[10:20]), headers
        assert request(port, "GET", path + "?tail=2")[2] == b"".join(body.splitlines(keepends=True)[-2:])
        status, headers, page = request(port, "GET", path, headers={"Accept": "text/html"})
        assert status == 200 and headers["content-type"].startswith("text/html") and b"cached line 399" in page
        assert headers.get("x-cache-status") != "HIT"  # no-store: never kept
        # What must never be cached is not.
        assert cache_status(port, "/healthz")[1] == "BYPASS"
        assert cache_status(port, "/healthz")[1] == "BYPASS"

        # After s-maxage the cache asks a node again (304: still there);
        # nginx counts whole seconds, so "after" means within one more.
        time.sleep(SHARED_TTL_S + 1.1)
        assert cache_status(port, path) == (200, "REVALIDATED", body)

        # A delete: through the balancer, so it may land on either node; the
        # cache stops serving the paste within the documented bound.
        status, _, _ = request(port, "DELETE", path, headers={"X-Delete-Token": token})
        assert status == 204
        deleted_at = time.monotonic()
        while get(port, path)[0] != 404:
            # The issue's bound, s-maxage + 1 s (nginx's clock is in whole
            # seconds), plus this loop's own step and one request.
            assert time.monotonic() - deleted_at <= SHARED_TTL_S + 1 + POLL_SLACK_S, (
                "the cache went on serving a deleted paste"
            )
            time.sleep(0.05)
        assert get(port, path)[0] == 404


@needs_nginx
@needs_loopback_aliases
def test_a_burn_paste_is_served_once_through_the_nginx_cache(cached_nodes, tmp_path: Path) -> None:
    nodes, ports = cached_nodes
    port = ports["http"]
    with hang_guard(TEST_BOUND_S), running_nginx(tmp_path, nodes, ports):
        for attempt in range(3):
            body = paste_body(f"burn {attempt}", 50)
            key = key_of(nc_paste(ports["tcp"], b"#!ncpaste burn=1\n" + body))
            # HEAD does not burn, and is not cached into a later GET.
            status, headers, _ = request(port, "HEAD", "/" + key)
            assert status == 200 and headers["cache-control"] == "no-store"
            # Many readers at once (the cache lock makes them wait for the
            # first one's answer): exactly one gets the paste.
            results: list[tuple[int, bytes]] = []
            lock = threading.Lock()

            def read() -> None:
                got = get(port, "/" + key)
                with lock:
                    results.append(got)

            readers = [threading.Thread(target=read) for _ in range(8)]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join(IO_TIMEOUT_S)
            assert sorted(status for status, _ in results) == [200] + [404] * 7, results
            assert [got for status, got in results if status == 200] == [body]
            assert get(port, "/" + key)[0] == 404
