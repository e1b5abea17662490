"""The servers a benchmark run starts, and the registry that ends them.

ncpaste and the references (fiche, nginx, pinnwand, the trio + h11 ceiling,
hypercorn, and nginx running deploy/nginx.conf as a cache front) each run in
their own process group on 127.0.0.1, started through one ``ProcessRegistry`` that the
run creates and ends on exit, on Ctrl-C and on an exception; the client
processes of ``bench_clients.run_clients`` are registered with it too. /proc
gives the memory and CPU time of a server's whole process tree.

No module-level state: a registry and an ``HttpConns`` are made by the entry
point (bench.py, scale_out.py) and handed to every server.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_clients import HttpConns

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"  # loopback only: no traffic ever leaves this machine
KiB = 1024
MiB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Processes: everything started is ended
# ---------------------------------------------------------------------------


class ProcessRegistry:
    """Servers and helpers, each in its own process group, and the client
    processes driving them: every process one run starts, ended at its end."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []
        self.clients: list[multiprocessing.Process] = []

    def start(self, cmd: list[str], log_path: Path, *, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=cwd,
            )
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, *, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
        if proc.poll() is None:
            # The leader only: a supervisor stops its own workers gracefully
            # (a group-wide signal would reach them twice).
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Whatever the leader left behind in its group (nginx workers, a
        # forked server worker) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.live:
            self.live.remove(proc)

    def add_client(self, proc: multiprocessing.Process) -> None:
        self.clients.append(proc)

    def discard_client(self, proc: multiprocessing.Process) -> None:
        if proc in self.clients:
            self.clients.remove(proc)

    def stop_all(self) -> None:
        """Client processes first (they would keep loading the servers), then
        the servers and helpers, newest first."""
        for client in list(self.clients):
            if client.is_alive():
                client.terminate()
                client.join(5)
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc, grace_s=5.0)
            except Exception:  # keep ending the others
                traceback.print_exc()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def last_line(path: Path) -> str:
    lines = [line for line in tail(path, 5).splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "(no output)"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# /proc and the disk: memory, CPU and bytes used by a server
# ---------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_of(pids: Iterable[int]) -> tuple[int, int]:
    """Summed RSS and PSS in bytes (PSS splits pages shared between workers)."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def cpu_seconds(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            # utime + stime (all threads) + cutime + cstime (reaped children:
            # a worker restarted mid-run keeps counting through its parent)
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / CLK_TCK


def du(path: Path) -> int:
    """Bytes of disk allocated under ``path`` (st_blocks, like du), directories included."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total + os.lstat(path).st_blocks * 512


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


class Server:
    """One server process: started through ``registry``; ``conns`` is the
    run's HTTP connections, closed before a stop (see ``stop``)."""

    name = "server"

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns) -> None:
        self.tmp = tmp
        self.registry = registry
        self.conns = conns
        self.proc: subprocess.Popen | None = None
        self.log = tmp / f"{self.name}.log"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def memory(self) -> tuple[int, int]:
        return memory_of(self.pids())

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def _wait_port(self, port: int, timeout_s: float = 60.0) -> float:
        """Seconds from process start until ``port`` accepts a connection."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {code}: {last_line(self.log)}\n{tail(self.log)}")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.002)
        self.stop()
        raise RuntimeError(f"{self.name}: port {port} did not accept within {timeout_s:g} s:\n{tail(self.log)}")

    def _spawn(self, cmd: list[str], **kw: Any) -> None:
        self.started = time.monotonic()
        self.proc = self.registry.start(cmd, self.log, **kw)

    def stop(self) -> None:
        # Our own idle keep-alive connections would hold a graceful shutdown
        # for its whole grace period.
        self.conns.close()
        if self.proc is not None:
            t0 = time.monotonic()
            self.registry.stop(self.proc)
            self.proc = None
            self.stop_s = time.monotonic() - t0


class Ncpaste(Server):
    """``python -m ncpaste serve`` on two free ports, limits and live off;
    ``extra_args`` go after the bench's own flags."""

    name = "ncpaste"

    def __init__(self, tmp: Path, data_dir: Path, registry: ProcessRegistry, conns: HttpConns, *,
                 python: str, extra_args: list[str], env: dict[str, str], label: str = "ncpaste") -> None:
        self.name = label
        super().__init__(tmp, registry, conns)
        self.data_dir = data_dir
        self.python = python
        self.extra_args = extra_args
        self.env = env
        self.tcp = free_port()
        self.http = free_port()
        self.url = f"http://{HOST}:{self.http}"

    def start(self) -> dict:
        cmd = [self.python, "-m", "ncpaste", "serve", "--data-dir", str(self.data_dir), "--limits", "off",
               "--log-level", "warning", "--live", "off", "--tcp", f"{HOST}:{self.tcp}",
               "--http", f"{HOST}:{self.http}", "--url", self.url]
        cmd += self.extra_args
        self._spawn(cmd, cwd=REPO, env=self.env)
        accepts = max(self._wait_port(self.http), self._wait_port(self.tcp))
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = self.conns.get(f"{self.url}/healthz")
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"ncpaste /healthz never answered 200:\n{tail(self.log)}")
            time.sleep(0.002)
        return {"accepts_s": accepts, "healthz_s": time.monotonic() - self.started}


class Fiche(Server):
    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns, buffer_bytes: int) -> None:
        self.name = f"fiche-B{buffer_bytes}"
        super().__init__(tmp, registry, conns)
        self.buffer_bytes = buffer_bytes
        self.port = free_port()
        self.out = tmp / f"{self.name}-out"

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        # -s 12: keys as long as ncpaste's, so neither side pays for collisions.
        self._spawn(["fiche", "-d", f"{HOST}:{self.port}", "-p", str(self.port), "-s", "12",
                     "-o", str(self.out), "-B", str(self.buffer_bytes)], cwd=self.tmp)
        self._wait_port(self.port)

    def read(self, url: str) -> bytes:
        slug = url.rstrip("/").rsplit("/", 1)[1]
        return (self.out / slug / "index.txt").read_bytes()


NGINX_CONF = """\
# Generated by bench/bench.py: a static file server tuned the usual way.
user root;                      # the temp root is 0700 and owned by root
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    open_file_cache max=1000 inactive=60s;
    gzip off;
    types {{ }}
    default_type "text/plain; charset=utf-8";
    client_body_temp_path {tmp}/nginx-tmp/body;
    proxy_temp_path {tmp}/nginx-tmp/proxy;
    fastcgi_temp_path {tmp}/nginx-tmp/fastcgi;
    uwsgi_temp_path {tmp}/nginx-tmp/uwsgi;
    scgi_temp_path {tmp}/nginx-tmp/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        root {root};
        # The same gzip bytes as ncpaste sends, precompressed (no on-the-fly gzip).
        location /gz/ {{ gzip_static on; }}
        # The same zstd frame as ncpaste sends; nginx has no zstd module in Debian.
        location /zst/ {{ add_header Content-Encoding zstd; add_header Vary Accept-Encoding; }}
    }}
}}
"""


class Nginx(Server):
    name = "nginx"

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns) -> None:
        super().__init__(tmp, registry, conns)
        self.port = free_port()
        self.root = tmp / "nginx-www"
        self.conf = tmp / "nginx.conf"
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        for sub in ("", "gz", "zst"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.tmp / "nginx-tmp").mkdir(exist_ok=True)
        self.conf.write_text(NGINX_CONF.format(tmp=self.tmp, host=HOST, port=self.port, root=self.root))
        self._spawn(["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "nginx-error.log"),
                     "-c", str(self.conf), "-g", "daemon off;"])
        self._wait_port(self.port)

    def put(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{rel}"


PINNWAND_CONF = """\
# Generated by bench/bench.py: pinnwand with its rate limits out of the way.
database_uri = "sqlite:///{db}"
paste_size = {paste_size}     # 1 MiB pastes highlight to more than the 256 KiB default
spamscore = 101               # never refuse a log for its links
[ratelimit.read]
capacity = 1000000000
consume = 1
refill = 1000000000
[ratelimit.create]
capacity = 1000000000
consume = 1
refill = 1000000000
[ratelimit.delete]
capacity = 1000000000
consume = 1
refill = 1000000000
"""


class Pinnwand(Server):
    name = "pinnwand"

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns, python: str, label: str = "pinnwand") -> None:
        self.name = label
        super().__init__(tmp, registry, conns)
        self.python = python
        self.port = free_port()
        self.conf = tmp / f"{label}.toml"
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        db = self.tmp / f"{self.name}.db"
        self.conf.write_text(PINNWAND_CONF.format(db=db, paste_size=64 * MiB))
        # pinnwand_serve.py is `pinnwand http` bound to 127.0.0.1 instead of every address.
        self._spawn([self.python, str(BENCH_DIR / "pinnwand_serve.py"), str(self.conf), HOST, str(self.port)],
                    cwd=self.tmp)
        self._wait_port(self.port)


class CeilingH11(Server):
    """bench/ceiling_h11.py: bare trio + h11 answering every request with one
    body, in the run's python (the trio and h11 that ncpaste runs on)."""

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns, python: str, body_file: Path,
                 label: str = "ceiling") -> None:
        self.name = label
        super().__init__(tmp, registry, conns)
        self.python = python
        self.body_file = body_file
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._spawn([self.python, str(BENCH_DIR / "ceiling_h11.py"), str(self.port), str(self.body_file)], cwd=self.tmp)
        self._wait_port(self.port)


class CeilingNc(Server):
    """bench/ceiling_nc.py: bare trio reading each connection to its FIN and
    answering one URL line, in the run's python (the trio ncpaste runs on)."""

    name = "ceiling-nc"

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns, python: str) -> None:
        super().__init__(tmp, registry, conns)
        self.python = python
        self.port = free_port()

    def start(self) -> None:
        self._spawn([self.python, str(BENCH_DIR / "ceiling_nc.py"), str(self.port)], cwd=self.tmp)
        self._wait_port(self.port)


HYPERCORN_TOML = """\
# Generated by bench/bench.py. The flags say the rest (trio worker, 1 worker,
# --keep-alive, no access log: hypercorn logs no requests unless given
# --access-logfile). Not a flag: hypercorn closes a keep-alive connection after
# 1000 requests by default, which would make wrk reconnect all through a run;
# ncpaste and nginx do not.
keep_alive_max_requests = 1000000000
"""


class Hypercorn(Server):
    """hypercorn with its trio worker (from its own venv) serving
    bench/hypercorn_app.py: the same body and headers as the ceiling."""

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns, venv: Path, body_file: Path,
                 label: str = "hypercorn") -> None:
        self.name = label
        super().__init__(tmp, registry, conns)
        self.venv = venv
        self.body_file = body_file
        self.port = free_port()
        self.conf = tmp / f"{label}.toml"
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.conf.write_text(HYPERCORN_TOML)
        app = f"{BENCH_DIR / 'hypercorn_app.py'}:make_app({str(self.body_file)!r})"
        # --keep-alive: seconds an idle keep-alive connection stays open (default 5).
        self._spawn([str(self.venv / "bin" / "hypercorn"), "-k", "trio", "-w", "1", "--keep-alive", "600",
                     "--backlog", "4096", "--log-level", "warning", "-b", f"{HOST}:{self.port}",
                     "-c", str(self.conf), app], cwd=self.tmp)
        self._wait_port(self.port)


# ---------------------------------------------------------------------------
# The shipped cache front: deploy/nginx.conf in front of one ncpaste
# ---------------------------------------------------------------------------

SHIPPED_NGINX_CONF = REPO / "deploy" / "nginx.conf"
# The node port behind each port deploy/nginx.conf names.
FRONT_PORT_KIND = {9999: "tcp", 9998: "live", 8080: "http"}


class StreamModuleMissing(Exception):
    """This nginx cannot load the stream module that deploy/nginx.conf needs."""


def _sub(text: str, pattern: str, repl: Any, what: str, count: int | None = None) -> str:
    """re.sub that fails loudly when the shipped file no longer has the line."""
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if not n or (count is not None and n != count):
        raise RuntimeError(f"deploy/nginx.conf changed: {what}: {n} matches of {pattern!r}")
    return new


def render_front_conf(shipped: str, tmp: Path, listen: dict[str, int], node: dict[str, int]) -> str:
    """deploy/nginx.conf as tests/test_load_balancer.py's ``nginx_config``
    renders it: paths under ``tmp``, listeners on loopback ports,
    and one upstream server per block (the ``10.0.0.11`` line) pointed at
    ``node``'s port of that kind. Everything else stays as shipped."""
    text = _sub(shipped, r"^user \S+;\n", "user root;\n" if os.geteuid() == 0 else "", "user", 1)
    text = _sub(text, r"^pid \S+;$", f"pid {tmp}/front-nginx.pid;", "pid", 1)
    text = _sub(text, r"^error_log \S+;$", f"error_log {tmp}/front-error.log;", "error_log", 1)
    text = _sub(text, r"^(\s*)access_log /var/log/nginx/(\S+)", rf"\1access_log {tmp}/front-\2", "access_log", 2)
    # worker_processes stays as shipped (auto), as for the static nginx beside it.
    temp = "".join(f"    {kind}_temp_path {tmp}/front-temp-{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = _sub(text, r"^http \{\n", "http {\n" + temp, "http block", 1)
    text = _sub(text, r"proxy_cache_path /var/cache/nginx/ncpaste ", f"proxy_cache_path {tmp}/front-cache ", "cache path", 1)
    for port, kind in FRONT_PORT_KIND.items():
        text = _sub(text, rf"^(\s*)listen {port}\b", rf"\g<1>listen {HOST}:{listen[kind]}", f"listen {port}", 1)

    def server(match: re.Match[str]) -> str:
        if match["host"] != "11":
            return ""
        return f"{match['head']}{HOST}:{node[FRONT_PORT_KIND[int(match['port'])]]}{match['tail']}\n"

    text = _sub(text, r"^(?P<head>\s*server\s+)10\.0\.0\.(?P<host>\d+):(?P<port>\d+)(?P<tail>.*)\n", server,
                "upstream server lines")
    if "10.0.0." in re.sub(r"#.*", "", text):
        raise RuntimeError("deploy/nginx.conf: an address 10.0.0.x left after rendering")
    return text


class CacheFront(Server):
    """nginx running deploy/nginx.conf (rendered for loopback) in front of one
    ncpaste node: netcat through the stream block with a PROXY header, HTTP
    through the read micro-cache."""

    name = "front-nginx"

    def __init__(self, tmp: Path, registry: ProcessRegistry, conns: HttpConns) -> None:
        super().__init__(tmp, registry, conns)
        self.ports = {kind: free_port() for kind in ("tcp", "live", "http")}
        self.conf = tmp / "front-nginx.conf"
        self.url = f"http://{HOST}:{self.ports['http']}"

    def start(self, node: dict[str, int]) -> None:
        """Render, check with ``nginx -t`` (StreamModuleMissing when the stream
        module is not there), start, wait for the HTTP port."""
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.tmp / f"front-temp-{kind}").mkdir(exist_ok=True)
        (self.tmp / "front-cache").mkdir(exist_ok=True)
        self.conf.write_text(render_front_conf(SHIPPED_NGINX_CONF.read_text(), self.tmp, self.ports, node))
        # No -p: the shipped include loads the stream module by a path relative
        # to nginx's own prefix; every path of the rendered file is absolute.
        base = ["nginx", "-e", str(self.tmp / "front-error.log"), "-c", str(self.conf)]
        check = subprocess.run(base + ["-t"], capture_output=True, text=True, timeout=30)
        output = (check.stdout + check.stderr).strip()
        if 'unknown directive "stream"' in output:
            raise StreamModuleMissing("nginx has no stream module (apt-get install libnginx-mod-stream, or --install)")
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t of the rendered deploy/nginx.conf failed: {output[-300:]}")
        self._spawn(base + ["-g", "daemon off;"])
        self._wait_port(self.ports["http"])
        self._wait_port(self.ports["tcp"])

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """One GET with exactly the headers wrk sends (Host only; http.client
        would add Accept-Encoding: identity, which the node's Vary makes a
        different cache entry)."""
        conn = http.client.HTTPConnection(HOST, self.ports["http"], timeout=30)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _deb_installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def _venv_with(venv: Path, module: str, requirement: str) -> None:
    """A venv at ``venv`` in which ``import module`` works, from PyPI."""
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv} with {requirement} from PyPI", file=sys.stderr)
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", requirement], check=True)


def install(pinnwand_venv: Path, hypercorn_venv: Path) -> None:
    """apt-get the references that are missing (with nginx's stream module for
    deploy/nginx.conf); pinnwand and hypercorn from PyPI, each into its own venv."""
    missing = [p for p, exe in (("nginx", "nginx"), ("fiche", "fiche"), ("wrk", "wrk")) if not shutil.which(exe)]
    if shutil.which("dpkg-query") and not _deb_installed("libnginx-mod-stream"):
        missing.append("libnginx-mod-stream")
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    _venv_with(pinnwand_venv, "pinnwand", "pinnwand")
    # The trio worker needs the extra: hypercorn alone runs on asyncio only.
    _venv_with(hypercorn_venv, "hypercorn.trio", "hypercorn[trio]")
