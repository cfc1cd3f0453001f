"""The ``dyntools`` command. Each sub-command lives in its own module and registers itself.

User errors (bad paths, bad options, existing outputs) end in one line on stderr and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from dyntools.text import printable

# name -> module; modules are imported only when their command runs, so `dyntools runs` does
# not pay for importing the training code.
COMMANDS: dict[str, str] = {
    "train": "dyntools.cli.train_command",
    "export": "dyntools.cli.export_command",
    "runs": "dyntools.cli.runs_command",
    "hookpoints": "dyntools.cli.hookpoints_command",
    "probe": "dyntools.cli.probe_command",
    "compute": "dyntools.cli.compute_command",
    "watch": "dyntools.cli.watch_command",
    "crashes": "dyntools.cli.crashes_command",
    "fit": "dyntools.cli.fit_command",
    "app": "dyntools.cli.app_command",
}

# Exceptions that mean "the user asked for something that cannot be done", reported in one line.
USER_ERRORS = (ValueError, OSError, LookupError)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full argument parser; ``commands`` limits which sub-commands get registered."""
    parser = OneLineErrorParser(
        prog="dyntools",
        description="See how a neural network's training unfolded, from its checkpoints.",
    )
    from dyntools import __version__

    parser.add_argument("--version", action="version", version=f"dyntools {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands if commands is not None else COMMANDS:
        module = importlib.import_module(COMMANDS[name])
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dyntools`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Register only the command asked for (when it is a known one): keeps start-up fast.
    wanted = [args_list[0]] if args_list and args_list[0] in COMMANDS else None
    parser = build_parser(wanted)
    args = parser.parse_args(args_list)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        print("dyntools: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        print(f"dyntools {args.command}: error: {printable(str(error))}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
