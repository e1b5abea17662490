"""systemd integration: socket activation, sd_notify and the watchdog
(``ncpaste.process.systemd``), and the unit files in ``systemd/``.

Inherited sockets are tested in a child process that really has them on fds
3, 4, ... with ``LISTEN_PID`` equal to its own pid, started either by a small
launcher (dup2 + exec, which keeps the pid) or by systemd's own
``systemd-socket-activate``. The unit files are checked with the machine's
``systemd-analyze``: ``verify`` and an offline ``security`` review.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ncpaste.process import systemd

REPO = Path(__file__).resolve().parent.parent
UNIT_DIR = REPO / "systemd"
SERVICE = UNIT_DIR / "ncpaste.service"
# The names the server looks its listeners up by (FileDescriptorName=).
LISTENER_NAMES = {"netcat", "http", "live"}
# "OK" in systemd-analyze security's scale (0 safest ... 10 most exposed);
# above it the verdict becomes "MEDIUM".
MAX_EXPOSURE = 2.0
# Where the unit's ExecStart= expects the installed program (README,
# "Running it as a service"); verify needs an executable there.
INSTALL_PREFIX = "/opt/ncpaste/"

# Bound on a child process that should finish by itself (it waits for at most
# one connection per socket, each within IO_TIMEOUT_S).
CHILD_TIMEOUT_S = 20
IO_TIMEOUT_S = 10
# Bound on one systemd-analyze run; verify loads a few hundred units.
ANALYZE_TIMEOUT_S = 60

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
needs_socket_activate = pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate"
)

# Runs inside the activated process: takes the inherited sockets, answers one
# connection per socket with the socket's name, and prints what it found as
# JSON, including what a child of its own would inherit.
CHILD = r"""
import json, os, subprocess, sys
from ncpaste.process.systemd import inherited_sockets

try:
    found = inherited_sockets()
except ValueError as exc:
    fd3_open = True
    try:
        os.fstat(3)
    except OSError:
        fd3_open = False
    print(json.dumps({"error": str(exc), "fd3_still_open": fd3_open}))
    sys.exit(0)

report = {}
for name, socks in found.items():
    for sock in socks:
        address = sock.getsockname()
        report.setdefault(name, []).append({
            "fd": sock.fileno(),
            "family": sock.family.name,
            "type": sock.type.name,
            "address": address[1] if isinstance(address, tuple) else address,
            "inheritable": sock.get_inheritable(),
        })
        sock.settimeout(%(io_timeout)s)
        connection, _ = sock.accept()
        connection.sendall(name.encode())
        connection.close()

# What a child would get: close_fds=False so that only FD_CLOEXEC keeps the
# sockets out of it.
grandchild = subprocess.run(
    [sys.executable, "-c",
     "import json, os\n"
     "open_fds = []\n"
     "for fd in (3, 4, 5):\n"
     "    try: os.fstat(fd); open_fds.append(fd)\n"
     "    except OSError: pass\n"
     "print(json.dumps({'env': sorted(k for k in os.environ if k.startswith('LISTEN_')), 'fds': open_fds}))"],
    close_fds=False, capture_output=True, text=True, timeout=%(io_timeout)s,
)
print(json.dumps({
    "sockets": report,
    "env_left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    "grandchild": json.loads(grandchild.stdout),
}))
""" % {"io_timeout": IO_TIMEOUT_S}

# Plays the service manager: moves the fds named in argv[1] to 3, 4, ...,
# sets LISTEN_PID to its own pid and execs the child, which keeps that pid.
LAUNCHER = r"""
import fcntl, os, sys
sources = [int(fd) for fd in sys.argv[1].split(",")]
# First out of the way: a source may already sit on 3 or 4.
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
for fd in sources:
    os.close(fd)
for target, fd in enumerate(moved, start=3):
    os.dup2(fd, target)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = str(len(sources))
os.execv(sys.executable, [sys.executable, "-c", sys.argv[2]])
"""


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    return {**env, **extra}


def listening_tcp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def activate(files: list, **env: str) -> dict:
    """Run CHILD with ``files`` (sockets or open files) as fds 3, 4, ... and
    return its report."""
    fds = [f.fileno() for f in files]
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), CHILD],
        pass_fds=fds, env=child_env(**env), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def name_served_at(address: tuple[str, int] | str) -> str:
    """Connect and read what the activated child answers: its socket's name."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(IO_TIMEOUT_S)
        client.connect(address)
        return client.recv(100).decode()


# ---------------------------------------------------------------- inherited_sockets


def test_inherited_sockets_by_name_from_a_launcher() -> None:
    listeners = [listening_tcp_socket() for _ in range(3)]
    ports = [sock.getsockname()[1] for sock in listeners]
    # Connections wait in the backlog until the child accepts them.
    clients = []
    for port in ports:
        client = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        clients.append(client)
    try:
        report = activate(listeners, LISTEN_FDNAMES="netcat:http:netcat")
        answers = [client.recv(100).decode() for client in clients]
    finally:
        for sock in [*listeners, *clients]:
            sock.close()

    sockets = report["sockets"]
    assert sorted(sockets) == ["http", "netcat"]
    # Two sockets may share a name (IPv4 + IPv6, say); they come in fd order.
    assert [(s["fd"], s["address"]) for s in sockets["netcat"]] == [(3, ports[0]), (5, ports[2])]
    assert [(s["fd"], s["address"]) for s in sockets["http"]] == [(4, ports[1])]
    for sock in [*sockets["netcat"], *sockets["http"]]:
        assert (sock["family"], sock["type"], sock["inheritable"]) == ("AF_INET", "SOCK_STREAM", False)
    # Each name is really bound to the listener on that port.
    assert answers == ["netcat", "http", "netcat"]
    # Nothing leaks to the server's own children: no variables, no fds.
    assert report["env_left"] == []
    assert report["grandchild"] == {"env": [], "fds": []}


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (None, ["unknown", "unknown"]),
        ("netcat:", ["netcat", "unknown"]),
        (":http", ["unknown", "http"]),
    ],
)
def test_unnamed_sockets_are_called_unknown(names: str | None, expected: list[str]) -> None:
    listeners = [listening_tcp_socket() for _ in range(2)]
    clients = [socket.create_connection(s.getsockname(), timeout=IO_TIMEOUT_S) for s in listeners]
    try:
        report = activate(listeners, **({"LISTEN_FDNAMES": names} if names is not None else {}))
        answers = [client.recv(100).decode() for client in clients]
    finally:
        for sock in [*listeners, *clients]:
            sock.close()
    assert answers == expected
    assert sorted(report["sockets"]) == sorted(set(expected))


def test_an_fd_that_is_not_a_socket_is_a_clear_error(tmp_path: Path) -> None:
    listener = listening_tcp_socket()
    with open(tmp_path / "not-a-socket", "w") as regular_file, listener:
        report = activate([listener, regular_file], LISTEN_FDNAMES="netcat:http")
    assert "fd 4" in report["error"] and "'http'" in report["error"] and "not an open socket" in report["error"]
    # The sockets already wrapped are given back untouched, not closed.
    assert report["fd3_still_open"] is True


@needs_socket_activate
def test_inherited_sockets_from_systemd_socket_activate(tmp_path: Path) -> None:
    """systemd's own implementation of the protocol sets the variables."""
    netcat_path, http_path = str(tmp_path / "netcat.sock"), str(tmp_path / "http.sock")
    process = subprocess.Popen(
        ["systemd-socket-activate", "-l", netcat_path, "-l", http_path, "--fdname=netcat:http",
         sys.executable, "-c", CHILD],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + IO_TIMEOUT_S
        while not (os.path.exists(netcat_path) and os.path.exists(http_path)):
            assert time.monotonic() < deadline and process.poll() is None, "systemd-socket-activate did not listen"
            time.sleep(0.02)
        # The first connection starts the child; it answers both.
        assert name_served_at(netcat_path) == "netcat"
        assert name_served_at(http_path) == "http"
        stdout, stderr = process.communicate(timeout=CHILD_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    assert {name: [(s["fd"], s["family"], s["address"]) for s in socks] for name, socks in report["sockets"].items()} == {
        "netcat": [(3, "AF_UNIX", netcat_path)],
        "http": [(4, "AF_UNIX", http_path)],
    }
    assert report["grandchild"] == {"env": [], "fds": []}


def test_no_activation_means_no_sockets() -> None:
    assert systemd.inherited_sockets({}) == {}


def test_variables_meant_for_another_process_are_ignored_and_removed() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "netcat:http", "HOME": "/x"}
    assert systemd.inherited_sockets(environ) == {}
    assert environ == {"HOME": "/x"}


def test_unset_false_keeps_the_variables() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert systemd.inherited_sockets(environ, unset=False) == {}
    assert environ == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}


def test_zero_sockets_is_no_sockets() -> None:
    environ = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}
    assert systemd.inherited_sockets(environ) == {}
    assert environ == {}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"LISTEN_PID": "abc", "LISTEN_FDS": "1"}, "LISTEN_PID='abc' is not a decimal number"),
        ({"LISTEN_PID": "", "LISTEN_FDS": "1"}, "LISTEN_PID='' is not a decimal number"),
        ({"LISTEN_PID": "-1", "LISTEN_FDS": "1"}, "LISTEN_PID='-1' is not a decimal number"),
        ({"LISTEN_PID": " 1", "LISTEN_FDS": "1"}, "LISTEN_PID=' 1' is not a decimal number"),
        ({"LISTEN_PID": "0", "LISTEN_FDS": "1"}, "LISTEN_PID='0' must be greater than zero"),
        ({"LISTEN_FDS": "two"}, "LISTEN_FDS='two' is not a decimal number"),
        ({"LISTEN_FDS": "-1"}, "LISTEN_FDS='-1' is not a decimal number"),
        ({"LISTEN_FDS": "1.0"}, "LISTEN_FDS='1.0' is not a decimal number"),
        ({"LISTEN_FDS": "2", "LISTEN_FDNAMES": "netcat"}, "LISTEN_FDNAMES='netcat' has 1 names but LISTEN_FDS=2"),
        ({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "netcat:http"}, "has 2 names but LISTEN_FDS=1"),
    ],
)
def test_malformed_variables_are_a_clear_error(variables: dict[str, str], message: str) -> None:
    # These fail before any fd is touched, so they are safe in the test process.
    environ = {"LISTEN_PID": str(os.getpid()), **variables}
    with pytest.raises(ValueError, match=re.escape(message)):
        systemd.inherited_sockets(environ)
    assert environ == {}


# ---------------------------------------------------------------- notify


@pytest.fixture
def notify_receiver(tmp_path: Path):
    """A datagram socket like systemd's notify socket, bound to a path."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(IO_TIMEOUT_S)
        yield receiver, str(path)


def receive_exactly_one(receiver: socket.socket) -> bytes:
    datagram = receiver.recv(4096)
    receiver.setblocking(False)
    with pytest.raises(BlockingIOError):
        receiver.recv(4096)
    return datagram


def test_notify_sends_one_datagram_to_a_path(notify_receiver) -> None:
    receiver, path = notify_receiver
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path}) is True
    assert receive_exactly_one(receiver) == b"READY=1"


def test_notify_to_an_abstract_socket() -> None:
    name = f"ncpaste-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(IO_TIMEOUT_S)
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert receive_exactly_one(receiver) == b"READY=1"


def test_notify_several_assignments_in_one_datagram(notify_receiver) -> None:
    receiver, path = notify_receiver
    assert systemd.notify("STATUS=serving ✓\nREADY=1", {"NOTIFY_SOCKET": path}) is True
    assert receive_exactly_one(receiver) == "STATUS=serving ✓\nREADY=1".encode()


def test_notify_carries_our_pid_for_notify_access_main(notify_receiver) -> None:
    """systemd enables SO_PASSCRED and checks the sender's pid against
    NotifyAccess=main; the kernel must see the message as ours."""
    receiver, path = notify_receiver
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    assert systemd.notify("WATCHDOG=1", {"NOTIFY_SOCKET": path}) is True
    data, ancillary, _, _ = receiver.recvmsg(4096, socket.CMSG_SPACE(12))
    assert data == b"WATCHDOG=1"
    [(level, kind, credentials)] = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    assert int.from_bytes(credentials[:4], sys.byteorder) == os.getpid()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"NOTIFY_SOCKET": ""},
        {"NOTIFY_SOCKET": "relative/path"},
        {"NOTIFY_SOCKET": "vsock:2:1234"},
        {"NOTIFY_SOCKET": "/nonexistent/ncpaste/notify"},
        {"NOTIFY_SOCKET": "/" + "x" * 200},
        {"NOTIFY_SOCKET": "/with\0nul"},
        {"NOTIFY_SOCKET": f"@ncpaste-nobody-{uuid.uuid4().hex}"},
    ],
)
def test_notify_without_a_manager_is_false(environ: dict[str, str]) -> None:
    assert systemd.notify("READY=1", environ) is False


@pytest.mark.parametrize("state", ["", "STATUS=\udcff"])
def test_notify_refuses_what_it_cannot_send(notify_receiver, state: str) -> None:
    receiver, path = notify_receiver
    assert systemd.notify(state, {"NOTIFY_SOCKET": path}) is False
    receiver.setblocking(False)
    with pytest.raises(BlockingIOError):
        receiver.recv(4096)


def test_notify_never_blocks_on_a_full_queue(notify_receiver) -> None:
    """A receiver that never reads fills its queue (net.unix.max_dgram_qlen);
    then notify answers False at once instead of stalling the event loop.
    In a child process, so a blocking notify fails the test instead of hanging it."""
    _, path = notify_receiver
    loop = (
        "import sys, time\n"
        "from ncpaste.process.systemd import notify\n"
        "for sent in range(100_000):\n"
        "    started = time.monotonic()\n"
        "    if not notify('WATCHDOG=1', {'NOTIFY_SOCKET': sys.argv[1]}):\n"
        "        print(sent, time.monotonic() - started)\n"
        "        break\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", loop, path], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    sent, refused_after_s = result.stdout.split()
    assert int(sent) > 0
    assert float(refused_after_s) < 1.0


# ---------------------------------------------------------------- watchdog


@pytest.mark.parametrize(
    ("environ", "expected_s"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "1"}, 0.0000005),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{pid}"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "{other}"}, None),
        ({"WATCHDOG_PID": "{pid}"}, None),
    ],
)
def test_watchdog_interval_is_half_the_managers(environ: dict[str, str], expected_s: float | None) -> None:
    pids = {"pid": os.getpid(), "other": os.getpid() + 1}
    environ = {key: value.format(**pids) for key, value in environ.items()}
    assert systemd.watchdog_interval_s(environ) == expected_s


@pytest.mark.parametrize(
    "environ",
    [
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "abc"},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-30000000"},
        {"WATCHDOG_USEC": "3e7"},
        {"WATCHDOG_USEC": str(2**64 - 1)},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "0"},
    ],
)
def test_malformed_watchdog_variables_are_a_clear_error(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="WATCHDOG_"):
        systemd.watchdog_interval_s(environ)


# ---------------------------------------------------------------- unit files


def unit_settings(path: Path) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}``; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(settings: list[tuple[str, str]], key: str) -> list[str]:
    return [word for k, v in settings if k == key for word in v.split()]


def socket_units() -> list[Path]:
    return sorted(UNIT_DIR.glob("*.socket"))


def test_socket_units_pass_the_listeners_by_name_to_the_service() -> None:
    names = {}
    for unit in socket_units():
        socket_section = unit_settings(unit)["Socket"]
        [name] = values(socket_section, "FileDescriptorName")
        assert values(socket_section, "Service") == ["ncpaste.service"], unit.name
        assert values(socket_section, "ListenStream"), unit.name
        names[unit.name] = name
    assert set(names.values()) == LISTENER_NAMES
    service = unit_settings(SERVICE)
    for key in ("Requires", "After"):
        assert set(values(service["Unit"], key)) == set(names), key
    assert set(values(service["Service"], "Sockets")) == set(names)
    assert set(values(service["Install"], "Also")) == set(names)


def executables(unit: Path) -> list[str]:
    """The programs the unit's Exec*= lines run, without systemd's prefixes."""
    return [
        value.split()[0].lstrip("-@:+!|")
        for key, value in unit_settings(unit).get("Service", [])
        if key.startswith("Exec")
    ]


def fake_root(root: Path) -> Path:
    """A file system root in which the units verify as if installed: the
    host's system units (verify loads sysinit.target, sockets.target, ... as
    dependencies), ours in /etc/systemd/system, the host's copy of every
    program they run, and a stub for ncpaste itself, which is not installed
    on a test machine. Returns the directory holding our units."""
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    for unit in [SERVICE, *socket_units()]:
        shutil.copy(unit, installed / unit.name)
    for program in executables(SERVICE):
        target = root / program.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if program.startswith(INSTALL_PREFIX):
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)
        elif os.path.exists(program):
            shutil.copy(program, target)
        # Anything else stays missing, and verify reports it.
    return installed


def verify(root: Path, units: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *map(str, units)],
        capture_output=True, text=True, timeout=ANALYZE_TIMEOUT_S,
    )


@needs_analyze
def test_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify --root``: the units parse without a warning,
    their dependencies resolve and every Exec*= program exists (in the root)."""
    root = tmp_path / "root"
    installed = fake_root(root)
    result = verify(root, sorted(installed.iterdir()))
    print(result.stdout, result.stderr)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_verify_in_the_fake_root_catches_mistakes(tmp_path: Path) -> None:
    """The check above is not vacuous: an unknown key, and a missing program,
    are both reported from the same kind of root."""
    root = tmp_path / "root"
    installed = fake_root(root)
    service = installed / "ncpaste.service"
    service.write_text(service.read_text().replace("[Service]\n", "[Service]\nNoSuchSetting=1\n"))
    result = verify(root, [service])
    assert "Unknown key 'NoSuchSetting'" in result.stderr
    (root / INSTALL_PREFIX.lstrip("/") / "bin/ncpaste").unlink()
    result = verify(root, [service])
    assert result.returncode != 0
    assert "/opt/ncpaste/bin/ncpaste is not executable" in result.stderr


@needs_analyze
def test_service_sandbox_exposure_is_ok() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(SERVICE)],
        capture_output=True, text=True, timeout=ANALYZE_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for ncpaste\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure of ncpaste.service: {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout
