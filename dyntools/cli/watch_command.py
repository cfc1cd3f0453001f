"""``dyntools watch FOLDER``: follow a folder while runs write into it, computing each new
checkpoint into the store once it is complete, until Ctrl-C."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from dyntools.cli.compute_command import add_compute_arguments, options_from_args
from dyntools.pipeline.runner import ComputeSummary
from dyntools.pipeline.watch import DEFAULT_INTERVAL, Watcher, watch
from dyntools.pipeline.workers import configure_process
from dyntools.text import printable


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow a folder while runs train: compute each new checkpoint once complete",
        description="Poll FOLDER (file sizes and times; no file-system events needed, so "
        "network file systems work) and compute every new checkpoint into the store once it is "
        "complete, as `dyntools compute` would. Ctrl-C stops; what was computed is stored. "
        "Open `dyntools app FOLDER` beside it and turn on 'Follow this folder'.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER")
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between polls (default {DEFAULT_INTERVAL:g})",
    )
    add_compute_arguments(parser)
    parser.set_defaults(func=handler)


class _Report:
    """One line per poll that computed something; each failure once (a failing checkpoint is
    tried again when its files change, in case it is replaced)."""

    def __init__(self) -> None:
        self.failures: set[str] = set()

    def __call__(self, summary: ComputeSummary) -> None:
        new = [f.reason for f in summary.failed if f.reason not in self.failures]
        self.failures.update(new)
        if summary.computed:
            print(
                f"{time.strftime('%H:%M:%S')} {summary.computed} checkpoint(s) computed; "
                f"{summary.checkpoints} in {summary.runs} run(s)",
                flush=True,
            )
        for reason in new:
            print(f"  failed: {printable(reason)}", flush=True)


def handler(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder: check the path")
    if args.interval <= 0:
        raise ValueError(f"--interval takes seconds > 0, got {args.interval}")
    configure_process()
    watcher = Watcher(args.folder, options_from_args(args), db=args.db)
    print(f"watching {printable(str(args.folder))} every {args.interval:g} s (Ctrl-C stops)")
    try:
        watch(watcher, args.interval, on_poll=_Report())
    except KeyboardInterrupt:
        print("stopped; everything computed so far is stored")
    return 0
