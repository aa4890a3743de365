"""``python -m pipeline.checks NAME``: parse the options, run the check, print one line
and return the exit status (0 passed, 1 the image failed, 2 the check could not run)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from pipeline.checks.common import CheckFailed, UsageError
from pipeline.checks.registry import CHECKS, FIELDS, Inputs

PROG = "pipeline.checks"


class _Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"python -m {PROG}",
        description="Run one of Fortnight's built-in image checks (see --list).",
        epilog="Each option overrides the environment variable named in its help.",
    )
    parser.add_argument("check", nargs="?", help="the check to run")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    for key, field in FIELDS.items():
        parser.add_argument(
            field.option, dest=key, metavar=key.upper(), help=f"{field.help} ({field.env})"
        )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the check named in ``argv`` and print its one line; return the exit status."""
    env = os.environ if environ is None else environ
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, after printing it
            return int(e.code or 0)
        if args.list:
            width = max(map(len, CHECKS))
            for key, listed in CHECKS.items():
                print(f"{key:<{width}}  {listed.description}")
            return 0
        if not args.check:
            raise UsageError(f"name a check (one of {', '.join(CHECKS)}) or pass --list")
        check = CHECKS.get(args.check)
        if check is None:
            raise UsageError(f"unknown check {args.check!r} (known: {', '.join(CHECKS)})")
        values = {
            key: (opt if (opt := getattr(args, key)) is not None else env.get(field.env, ""))
            for key, field in FIELDS.items()
        }
        line = check.run(Inputs(values))
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(e)
        return 1
    except OSError as e:  # the file vanished or could not be read: not the image's fault
        print(
            f"{PROG}: cannot read {e.filename or 'the image'}: {e.strerror or e}", file=sys.stderr
        )
        return 2
    print(line)
    return 0
