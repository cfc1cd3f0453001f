"""``dyntools crashes FOLDER [--json] [thresholds]``: the rising crashes (fast.ai's "colorful
dimension" warning) in the per-step activation statistics of every run below a folder.

Exit status: 1 when a crash was found, 0 when none was (runs without step statistics are listed,
not an error), 2 on bad input (a missing folder, a bad threshold, an unreadable statistics
file): a script or CI job can stop a training whose layers crashed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dyntools.crash import (
    DEFAULT_COLLAPSE,
    DEFAULT_DEAD_RISE,
    DEFAULT_RISE,
    DEFAULT_RISE_WINDOW,
    DEFAULT_WINDOW,
    CrashThresholds,
    RunCrashes,
    folder_crashes,
)
from dyntools.text import path_text, printable

SCHEMA = 1


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "crashes",
        help="find rising crashes (std up, then collapsed, dead fraction up) in step statistics",
        description="Read the per-step activation statistics of every run below FOLDER "
        "(dyntools train --step-stats, dyntools.hooks.ActivationStats) and print one line per "
        "layer whose activations' std rose, then collapsed while its dead fraction jumped "
        "(the rule: docs/metrics.md, 'Rising crash'). Exit status 1 when a crash was found, "
        "0 when none, 2 on bad input.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="folder to search (recursively)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema 1)")
    parser.add_argument(
        "--rise",
        type=float,
        default=DEFAULT_RISE,
        metavar="R",
        help="the peak's std is at least R times the lowest std of the rise window before it "
        f"(default {DEFAULT_RISE:g})",
    )
    parser.add_argument(
        "--collapse",
        type=float,
        default=DEFAULT_COLLAPSE,
        metavar="C",
        help="the std falls to peak / C or below within the window after the peak, and its "
        f"median over the window from there stays there (default {DEFAULT_COLLAPSE:g})",
    )
    parser.add_argument(
        "--dead-rise",
        type=float,
        default=DEFAULT_DEAD_RISE,
        metavar="D",
        help="the mean dead fraction after the collapse exceeds the mean before the peak by at "
        f"least D (0..1; default {DEFAULT_DEAD_RISE:g})",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help="recorded steps for the fall and for the means before and after "
        f"(default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--rise-window",
        type=int,
        default=DEFAULT_RISE_WINDOW,
        metavar="N",
        help=f"recorded steps before the peak its rise is measured over (default "
        f"{DEFAULT_RISE_WINDOW})",
    )
    parser.set_defaults(func=handler)


def thresholds_from_args(args: argparse.Namespace) -> CrashThresholds:
    return CrashThresholds(
        rise=args.rise,
        collapse=args.collapse,
        dead_rise=args.dead_rise,
        window=args.window,
        rise_window=args.rise_window,
    )


def crashes_json(
    folder: str, thresholds: CrashThresholds, runs: list[RunCrashes]
) -> dict[str, Any]:
    """The documented ``dyntools crashes --json`` form."""
    return {
        "schema": SCHEMA,
        "folder": folder,
        "thresholds": asdict(thresholds),
        "crashes": sum(len(run.crashes) for run in runs),
        "runs": [
            {
                "id": run.run_id,
                "path": path_text(run.path),
                "step_stats": run.has_stats,
                "crashes": [
                    {key: value for key, value in asdict(crash).items() if key != "run_id"}
                    for crash in run.crashes
                ],
            }
            for run in runs
        ],
    }


def _text(folder: str, runs: list[RunCrashes]) -> str:
    lines = [printable(crash.describe()) for run in runs for crash in run.crashes]
    without = [run for run in runs if not run.has_stats]
    lines.extend(
        f"{printable(run.run_id)}: no step statistics (record them with dyntools train "
        "--step-stats or dyntools.hooks.ActivationStats)"
        for run in without
    )
    checked = len(runs) - len(without)
    crashed = sum(1 for run in runs if run.crashes)
    total = sum(len(run.crashes) for run in runs)
    where = printable(folder)
    if not checked:
        lines.append(f"no run with step statistics below {where}: nothing checked")
    elif total:
        lines.append(f"{total} crash(es) in {crashed} of {checked} run(s) with step statistics")
    else:
        lines.append(f"no rising crash in {checked} run(s) with step statistics below {where}")
    return "\n".join(lines)


def handler(args: argparse.Namespace) -> int:
    thresholds = thresholds_from_args(args)  # bad thresholds fail before any reading
    runs = folder_crashes(args.folder, thresholds)
    if args.json:
        folder = path_text(Path(args.folder).expanduser().absolute())  # as the runs' paths
        print(json.dumps(crashes_json(folder, thresholds, runs), indent=2))
    else:
        print(_text(path_text(args.folder), runs))
    return 1 if any(run.crashes for run in runs) else 0
