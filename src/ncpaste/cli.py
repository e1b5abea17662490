"""Command line: ``ncpaste serve``. Flags win over ``NCPASTE_*`` environment variables."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ncpaste import __version__
from ncpaste.config import Address, Config, check
from ncpaste.core import units

log = logging.getLogger("ncpaste")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Setting:
    flag: str
    field: str
    convert: Callable[[str], Any]
    metavar: str
    help: str
    #: "value" (one value), "list" (repeatable flag; comma-separated in the
    #: environment) or "switch" (a flag without value; 1/0 in the environment).
    kind: str = "value"

    @property
    def env(self) -> str:
        return "NCPASTE_" + self.flag.lstrip("-").replace("-", "_").upper()


def _int(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "1", "yes", "true"):
        return True
    if lowered in ("off", "0", "no", "false"):
        return False
    raise ValueError(f"use on or off, not {text!r}")


def _cidr(text: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an address or CIDR: {text!r}") from None
    return text.strip()


SERVE_SETTINGS = (
    Setting("--data-dir", "data_dir", Path, "DIR", "where the LMDB store lives (created if missing; default ./data)"),
    Setting("--tcp", "tcp", Address.parse, "HOST:PORT", "netcat listener HOST:PORT (default 0.0.0.0:9999)"),
    Setting("--http", "http", Address.parse, "HOST:PORT", "HTTP listener HOST:PORT (default 0.0.0.0:8080)"),
    Setting("--url", "url", str, "URL", "URL prefix printed to clients (default http://HOSTNAME:HTTPPORT)"),
    Setting("--max-size", "max_paste_bytes", units.parse_size, "SIZE", "largest paste: 100000, 512KiB, 10MiB (default 10MiB)"),
    Setting("--default-expire", "default_expire_s", units.parse_duration, "DURATION", "expiry when none is asked for (default 7d)"),
    Setting("--max-expire", "max_expire_s", units.parse_duration, "DURATION", "longest expiry a client may ask for (default 90d)"),
    Setting("--idle-timeout", "idle_timeout_s", units.parse_seconds, "SECONDS", "netcat: a paste ends after this long without a byte (default 3s)"),
    Setting("--key-length", "key_length", _int, "N", "characters in a random key, 11..32 (default 12, 69.7 bits)"),
    Setting("--limits", "limits_enabled", _on_off, "on|off", "per-client limits on both ports (default on)"),
    Setting("--pastes-per-minute", "pastes_per_minute", _int, "N", "per client, with a burst of N (default 30)"),
    Setting("--bytes-per-day", "bytes_per_day", units.parse_size, "SIZE", "stored bytes per client per day (default 1GiB)"),
    Setting("--conns-per-client", "connections_per_client", _int, "N", "concurrent connections per client (default 32)"),
    Setting("--max-connections", "max_connections", _int, "N", "concurrent connections in all (default 4096)"),
    Setting("--ipv6-prefix", "ipv6_prefix", _int, "BITS", "IPv6 clients are grouped by this prefix (default 64)"),
    Setting("--allow", "allow", _cidr, "CIDR", "only these may connect (repeatable)", "list"),
    Setting("--deny", "deny", _cidr, "CIDR", "these may not connect; wins over --allow (repeatable)", "list"),
    Setting("--acl-file", "acl_file", Path, "FILE", "'allow CIDR' / 'deny CIDR' lines, re-read on SIGHUP"),
    Setting("--trusted-proxy", "trusted_proxies", _cidr, "CIDR",
            "believe PROXY headers and X-Forwarded-For/Forwarded from these (repeatable)", "list"),
    Setting("--redact", "redact_default", _on_off, "", "mask secrets in every paste, not only redact=1 ones", "switch"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncpaste", description="Terminal-native paste service: pipe text to netcat, get a URL."
    )
    parser.add_argument("--version", action="version", version=f"ncpaste {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the netcat and HTTP listeners on an embedded LMDB store.",
        epilog="Every flag can also be set as an environment variable, e.g. "
        "NCPASTE_DATA_DIR, NCPASTE_MAX_SIZE; a flag wins over the variable.",
    )
    for setting in SERVE_SETTINGS:
        helptext = f"{setting.help} [{setting.env}]"
        if setting.kind == "switch":
            serve.add_argument(setting.flag, action="store_const", const="on", help=helptext)
        elif setting.kind == "list":
            serve.add_argument(setting.flag, action="append", metavar=setting.metavar, help=helptext)
        else:
            serve.add_argument(setting.flag, metavar=setting.metavar, help=helptext)
    data_dir_help = "the server's data dir (default ./data) [NCPASTE_DATA_DIR]"
    backup = commands.add_parser(
        "backup",
        help="consistent, compacted copy of the store, safe while the server runs",
        description="Copy the store to DEST (a new or empty directory) while the server runs. "
        "Restore: start the server with --data-dir DEST.",
    )
    backup.add_argument("dest", type=Path, metavar="DEST")
    backup.add_argument("--data-dir", type=Path, help=data_dir_help)
    check = commands.add_parser(
        "check",
        help="verify every record and index; exit 1 if anything is wrong",
        description="Decompress every paste, verify its checksum, and cross-check the expiry "
        "index and key pool. Safe while the server runs. Exit 0 if all is well, 1 if not.",
    )
    check.add_argument("--data-dir", type=Path, help=data_dir_help)
    serve.add_argument("--log-level", default=os.environ.get("NCPASTE_LOG_LEVEL", "info"),
                       choices=["debug", "info", "warning", "error"], help="default info [NCPASTE_LOG_LEVEL]")
    return parser


def build_config(args: argparse.Namespace, environ: Mapping[str, str], parser: argparse.ArgumentParser) -> Config:
    values: dict[str, Any] = {}
    for setting in SERVE_SETTINGS:
        raw = getattr(args, setting.flag.lstrip("-").replace("-", "_"))
        source = setting.flag
        if raw is None and setting.env in environ:
            raw, source = environ[setting.env], setting.env
        if raw is None:
            continue
        try:
            if setting.kind == "list":
                items = raw if isinstance(raw, list) else [x for x in raw.split(",") if x.strip()]
                values[setting.field] = tuple(setting.convert(item) for item in items)
            else:
                values[setting.field] = setting.convert(raw)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    try:
        return check(Config(**values))
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


async def _serve_until_signalled(config: Config) -> None:
    from ncpaste.net.server import serve

    async with trio.open_nursery() as nursery:

        async def serve_then_finish(*, task_status: trio.TaskStatus[Any]) -> None:
            await serve(config, task_status=task_status)
            nursery.cancel_scope.cancel()

        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            running = await nursery.start(serve_then_finish)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    running.reload()
                    continue
                if running._stop.is_set():
                    log.warning("second signal: stopping now")
                    nursery.cancel_scope.cancel()
                    return
                log.info("received %s", signal.Signals(signum).name)
                running.stop()


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The errors inside (possibly nested) trio nursery exception groups."""
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        config = build_config(args, os.environ, parser)
        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        from ncpaste.net.server import StartupError, raise_fd_limit

        raise_fd_limit()
        failures: list[BaseException] = []
        try:
            trio.run(_serve_until_signalled, config)
        except* StartupError as group:
            failures.extend(_leaves(group))
        for error in failures:
            print(f"ncpaste: error: {error}", file=sys.stderr)
        return EXIT_FAILURE if failures else EXIT_OK
    return _maintenance(args, parser)


def _maintenance(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``backup`` and ``check``: one line per problem, exit 1 on failure."""
    import lmdb

    from ncpaste.store import maintenance

    data_dir = args.data_dir or Path(os.environ.get("NCPASTE_DATA_DIR", "./data"))

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.command == "backup":
            report = maintenance.backup(data_dir, args.dest, progress=progress)
            print(f"backup of {report.pastes} pastes ({report.bytes} bytes) written to {report.dest}")
            return EXIT_OK
        if args.command == "check":
            checked = maintenance.check(data_dir, progress=progress)
            for problem in checked.problems:
                print(f"problem: {problem}")
            print(
                f"checked {checked.pastes_checked} pastes "
                f"({checked.expired_not_swept} expired, not yet swept): "
                + ("ok" if checked.ok else f"{checked.problem_count} problems")
            )
            return EXIT_OK if checked.ok else EXIT_FAILURE
    except (ValueError, OSError, lmdb.Error) as exc:
        print(f"ncpaste: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
