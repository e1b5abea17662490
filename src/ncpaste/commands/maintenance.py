"""``ncpaste backup`` and ``ncpaste check``: one line per problem, exit 1 on failure."""

from __future__ import annotations

import argparse
import sys

from ncpaste.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    data_dir_of,
    end_status_line,
    status_line,
)

COMMANDS = ("backup", "check")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``backup`` and ``check``: one line per problem, exit 1 on failure."""
    import lmdb

    from ncpaste.store import maintenance

    data_dir = data_dir_of(args)

    try:
        if args.command == "backup":
            report = maintenance.backup(data_dir, args.dest, progress=status_line)
            end_status_line()
            print(f"backup of {report.pastes} pastes ({report.bytes} bytes) written to {report.dest}")
            return EXIT_OK
        if args.command == "check":
            checked = maintenance.check(data_dir, progress=status_line)
            end_status_line()
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
