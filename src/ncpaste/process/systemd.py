"""The service manager's side channels: socket activation, readiness, watchdog.

Plain-socket implementations of ``sd_listen_fds_with_names(3)``,
``sd_notify(3)`` and ``sd_watchdog_enabled(3)``, so the server needs neither
libsystemd nor a Python binding of it. Everything here is synchronous,
stdlib-only and never blocks; the trio shell decides when to call it (and
wraps the inherited sockets with ``trio.socket.from_stdlib_socket``).

Outside systemd every function is a no-op that says so: no sockets, ``False``
from :func:`notify`, ``None`` from :func:`watchdog_interval_s`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

# File descriptors 0-2 are stdin, stdout and stderr; systemd passes the
# listening sockets right after them, in the order of the socket units'
# Listen*= lines (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3
# The name systemd gives a passed socket whose unit sets no
# FileDescriptorName= and that has no name list at all (sd_listen_fds_with_names(3)).
UNKNOWN_FD_NAME = "unknown"
# LISTEN_FDNAMES separates the names with colons; a name can never contain one
# (systemd.socket(5), FileDescriptorName=).
FD_NAME_SEPARATOR = ":"

LISTEN_PID = "LISTEN_PID"
LISTEN_FDS = "LISTEN_FDS"
LISTEN_FDNAMES = "LISTEN_FDNAMES"
NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

# NOTIFY_SOCKET names a socket in the abstract namespace (unix(7)) with a
# leading "@", which stands for the NUL byte the kernel expects there.
ABSTRACT_SOCKET_PREFIX = "@"

USEC_PER_S = 1_000_000
# systemd's "infinity" for time spans; never a real watchdog interval.
USEC_INFINITY = 2**64 - 1
# sd_watchdog_enabled(3): "it is recommended that a daemon sends a keep-alive
# notification message to the service manager every half of the time
# returned here", so one late ping does not get the service killed.
WATCHDOG_PINGS_PER_INTERVAL = 2

Environ = MutableMapping[str, str]


def _decimal(environ: Environ, variable: str, *, allow_zero: bool = False) -> int:
    """The value of ``variable`` as a decimal integer above zero (or zero, when
    allowed), or ValueError naming the variable and its value.

    Stricter than ``int()``: no sign, spaces, underscores or non-ASCII digits,
    which systemd never writes and which would hide a corrupted environment.
    """
    text = environ[variable]
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{variable}={text!r} is not a decimal number")
    value = int(text)
    if value == 0 and not allow_zero:
        raise ValueError(f"{variable}={text!r} must be greater than zero")
    return value


def inherited_sockets(environ: Environ = os.environ, *, unset: bool = True) -> dict[str, list[socket.socket]]:
    """The listening sockets systemd passed to this process, by FileDescriptorName=.

    Follows ``sd_listen_fds_with_names(3)``: the sockets are meant for us only
    when ``LISTEN_PID`` is our pid (a variable inherited from a parent that was
    socket-activated is ignored); there are ``LISTEN_FDS`` of them from fd 3
    on; ``LISTEN_FDNAMES`` names them (without it every socket is called
    ``"unknown"``; an empty entry too). Several sockets may share a name, for
    instance one unit listening on IPv4 and IPv6 separately; they are returned
    in fd order. Returns ``{}`` when nothing was passed.

    Each socket is marked close-on-exec so a child process does not keep the
    port open, and left in the blocking mode it came with
    (``trio.socket.from_stdlib_socket`` makes it non-blocking).

    With ``unset`` (the default) the three variables are removed from
    ``environ`` whatever the outcome, so a child never mistakes them for its own.

    Raises ValueError, with the variable and value in the message, when the
    variables are malformed or a passed fd is not an open socket; the fds are
    then left as they were.
    """
    try:
        return _inherited_sockets(environ)
    finally:
        if unset:
            for variable in (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES):
                environ.pop(variable, None)


def _inherited_sockets(environ: Environ) -> dict[str, list[socket.socket]]:
    if LISTEN_PID not in environ or LISTEN_FDS not in environ:
        return {}
    if _decimal(environ, LISTEN_PID) != os.getpid():
        return {}
    count = _decimal(environ, LISTEN_FDS, allow_zero=True)
    if count == 0:
        return {}

    if LISTEN_FDNAMES in environ:
        names = environ[LISTEN_FDNAMES].split(FD_NAME_SEPARATOR)
        if len(names) != count:
            raise ValueError(
                f"{LISTEN_FDNAMES}={environ[LISTEN_FDNAMES]!r} has {len(names)} names "
                f"but {LISTEN_FDS}={count}"
            )
        names = [name or UNKNOWN_FD_NAME for name in names]
    else:
        names = [UNKNOWN_FD_NAME] * count

    sockets: dict[str, list[socket.socket]] = {}
    created: list[socket.socket] = []
    try:
        for fd, name in zip(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count), names):
            try:
                # Without family/type the socket module asks the kernel for them.
                sock = socket.socket(fileno=fd)
            except OSError as exc:
                raise ValueError(
                    f"{LISTEN_FDS}={count} but fd {fd} ({name!r}) is not an open socket: {exc.strerror}"
                ) from None
            created.append(sock)
            sock.set_inheritable(False)
            sockets.setdefault(name, []).append(sock)
    except BaseException:
        # The fds are not ours to close unless we hand them out.
        for sock in created:
            sock.detach()
        raise
    return sockets


def _notify_address(environ: Environ) -> str | bytes | None:
    address = environ.get(NOTIFY_SOCKET, "")
    if address.startswith(ABSTRACT_SOCKET_PREFIX):
        return b"\0" + address[len(ABSTRACT_SOCKET_PREFIX):].encode()
    if address.startswith("/"):
        return address
    # Unset, empty, or a kind this module does not speak (systemd 254 added
    # "vsock:"); like sd_notify, treat it as "not under a service manager".
    return None


def notify(state: str, environ: Environ = os.environ) -> bool:
    """Tell the service manager ``state`` (``"READY=1"``, ``"STOPPING=1"``,
    ``"WATCHDOG=1"``, ``"STATUS=..."``; several as newline-separated lines).

    One datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
    namespace), as ``sd_notify(3)`` sends it; the kernel attaches our
    credentials, which systemd checks against ``NotifyAccess=``.

    Returns True when the datagram was sent; False when not run by a service
    manager, or when sending failed. Never raises, and never blocks: it may be
    called from the event loop, and the manager's queue is only full when PID 1
    itself is stuck, where a dropped message is the least of the problems.
    """
    address = _notify_address(environ)
    if address is None or not state:
        return False
    try:
        payload = state.encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(payload, address)
    except (OSError, ValueError):
        # ValueError: a state with lone surrogates, or a NUL in the path.
        return False
    return True


def watchdog_interval_s(environ: Environ = os.environ) -> float | None:
    """How often to send ``WATCHDOG=1``, in seconds, or None when no watchdog
    is armed for this process.

    From ``WATCHDOG_USEC`` (set by ``WatchdogSec=``), honoured only when
    ``WATCHDOG_PID`` is absent or our pid (``sd_watchdog_enabled(3)``). The
    answer is half the manager's interval, as that page advises, so a single
    late ping does not get the service killed.

    Raises ValueError when either variable is malformed: a watchdog that
    cannot be read would silently turn into a kill after the interval.
    """
    if WATCHDOG_USEC not in environ:
        return None
    interval_usec = _decimal(environ, WATCHDOG_USEC)
    if interval_usec >= USEC_INFINITY:
        raise ValueError(f"{WATCHDOG_USEC}={environ[WATCHDOG_USEC]!r} is out of range")
    if WATCHDOG_PID in environ and _decimal(environ, WATCHDOG_PID) != os.getpid():
        return None
    return interval_usec / USEC_PER_S / WATCHDOG_PINGS_PER_INTERVAL
