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

    @property
    def env(self) -> str:
        return "NCPASTE_" + self.flag.lstrip("-").replace("-", "_").upper()


def _int(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


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
        serve.add_argument(setting.flag, metavar=setting.metavar, help=f"{setting.help} [{setting.env}]")
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

        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            running = await nursery.start(serve_then_finish)
            async for signum in signals:
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
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
