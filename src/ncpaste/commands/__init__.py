"""``ncpaste COMMAND``: every subcommand, in one package.

``serve`` and ``config`` read the settings (``settings.py``); ``serve`` runs
the process (``ncpaste.process.run``); ``backup`` and ``check`` are in
``maintenance.py``; the other admin commands in ``admin.py``. Exit codes,
the data-dir default and progress output are ``common.py``'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ncpaste import __version__
from ncpaste.commands import admin, maintenance
from ncpaste.commands.common import DATA_DIR_HELP, EXIT_OK
from ncpaste.commands.settings import ConfigError, add_server_flags, build_config, show_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncpaste", description="Terminal-native paste service: pipe text to netcat, get a URL."
    )
    parser.add_argument("--version", action="version", version=f"ncpaste {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    precedence = (
        "Every flag can also be set as an environment variable (NCPASTE_DATA_DIR, "
        "NCPASTE_MAX_SIZE, ...) or as a key in the --config file (data-dir, max-size, ...). "
        "Precedence: flag > environment > file > default."
    )
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the netcat and HTTP listeners on an embedded LMDB store.",
        epilog=precedence,
    )
    add_server_flags(serve)
    config = commands.add_parser(
        "config",
        help="print the effective configuration and where each value comes from",
        description="Print the configuration `serve` would run with, given the same flags, "
        "environment and --config file. Secrets are masked.",
        epilog=precedence,
    )
    add_server_flags(config)
    backup = commands.add_parser(
        "backup",
        help="consistent, compacted copy of the store, safe while the server runs",
        description="Copy the store to DEST (a new or empty directory) while the server runs. "
        "Restore: start the server with --data-dir DEST.",
    )
    backup.add_argument("dest", type=Path, metavar="DEST")
    backup.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    check = commands.add_parser(
        "check",
        help="verify every record and index; exit 1 if anything is wrong",
        description="Decompress every paste, verify its checksum, and cross-check the expiry "
        "index and key pool. Safe while the server runs. Exit 0 if all is well, 1 if not.",
    )
    check.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    admin.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("serve", "config"):
        try:
            config = build_config(args, os.environ)
            if args.command == "config":
                sys.stdout.write(show_config(args, os.environ))
                return EXIT_OK
        except ConfigError as exc:
            parser.error(str(exc))
        from ncpaste.process.run import run_serve

        return run_serve(
            config, lambda: build_config(args, os.environ), list(argv) if argv is not None else sys.argv[1:]
        )
    if args.command in admin.COMMANDS:
        return admin.run(args)
    return maintenance.run(args, parser)
