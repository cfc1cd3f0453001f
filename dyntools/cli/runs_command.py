"""``dyntools runs FOLDER [--json]``: the runs below a folder, their checkpoints and problems.

Exit status: 0 when at least one run was found (problems may still be listed), 1 when none was,
2 when FOLDER does not exist or is not a folder.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dyntools.checkpoints import Discovery, Problem, Run, discover_runs
from dyntools.text import path_text, printable

SCHEMA = 1


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list the training runs below a folder",
        description="List every training run below FOLDER (any supported checkpoint layout), "
        "with its checkpoints, scalars and the problems found.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="folder to search (recursively)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema 1)")
    parser.set_defaults(func=handler)


def problem_json(problem: Problem) -> dict[str, str]:
    return {"path": str(problem.path), "what": problem.what, "hint": problem.hint}


def run_json(run: Run) -> dict[str, Any]:
    """One run in the documented ``dyntools runs --json`` form."""
    return {
        "id": run.run_id,
        "path": str(run.path),
        "layout": run.layout,
        "task": run.task,
        "checkpoints": len(run.checkpoints),
        "first_step": run.first_step,
        "last_step": run.last_step,
        "scalar_names": list(run.scalar_names),
        "problems": [problem_json(p) for p in run.problems],
    }


def discovery_json(found: Discovery) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "folder": str(found.root),
        "runs": [run_json(run) for run in found.runs],
        "problems": [problem_json(p) for p in found.problems],
    }


def _table(found: Discovery) -> str:
    rows = [("RUN", "LAYOUT", "TASK", "CKPTS", "STEPS", "SCALARS", "PROBLEMS")]
    for run in found.runs:
        steps = f"{run.first_step}..{run.last_step}" if run.checkpoints else "-"
        scalars = ", ".join(run.scalar_names) or "-"
        rows.append(
            (
                printable(run.run_id),
                run.layout,
                printable(run.task),
                str(len(run.checkpoints)),
                steps,
                printable(scalars),
                str(len(run.problems)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]
    problems = found.all_problems()
    lines.append(
        f"{len(found.runs)} run(s) in {printable(path_text(found.root))}; "
        f"{len(problems)} problem(s)"
    )
    lines.extend(f"  {problem.message()}" for problem in problems)
    return "\n".join(lines)


def handler(args: argparse.Namespace) -> int:
    found = discover_runs(args.folder)
    print(json.dumps(discovery_json(found), indent=2) if args.json else _table(found))
    return 0 if found.runs else 1
