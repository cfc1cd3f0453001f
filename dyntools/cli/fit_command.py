"""``dyntools fit FOLDER``: latent training phases over the computed metrics."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from dyntools.checkpoints import task_from
from dyntools.cli.fit_args import add_fit_arguments, fit_config_from_args, state_names_from_args
from dyntools.hmm import format_fit_report
from dyntools.pipeline.fits import fit_document, fit_or_load, name_states, stability_or_load
from dyntools.store import Store, find_existing_db, locate_db


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit hidden Markov models over the computed metrics of the runs",
        description="Fit Gaussian HMMs (n = 1..K states) over the metrics computed for FOLDER, "
        "choose n by BIC, decode each run's states, and report transitions and convergence. "
        "Without --features, the paper's 14 features are used.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER")
    parser.add_argument("--db", type=Path, metavar="PATH", help="database file (default: FOLDER's)")
    add_fit_arguments(parser)
    parser.set_defaults(func=handler)


def runs_below(store: Store, folder: Path, task: str | None = None) -> tuple[str, ...]:
    """The ids of the stored runs whose folder is ``folder`` or below it (of ``task`` only,
    when given; a task no run has raises, naming the tasks there are)."""
    root = folder.resolve()
    below = [
        (run_id, task_from(json.loads(config or "{}"), layout))
        for run_id, path, layout, config in store.read_runs()
        .select("run_id", "path", "layout", "config_json")
        .iter_rows()
        if Path(path).resolve() == root or root in Path(path).resolve().parents
    ]
    if task is None:
        return tuple(run_id for run_id, _ in below)
    chosen = tuple(run_id for run_id, of in below if of == task)
    if not chosen and below:
        tasks = ", ".join(sorted({of for _, of in below}))
        raise LookupError(f"no computed run of task {task!r} below {folder}; its tasks: {tasks}")
    return chosen


def handler(args: argparse.Namespace) -> int:
    config = fit_config_from_args(args)  # bad settings are refused before anything is read
    names = state_names_from_args(args)
    if not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder: check the path")
    if args.db is not None:
        db = args.db
    else:
        # Results computed for a parent folder serve its subfolders too.
        found = find_existing_db(args.folder)
        db = found[0] if found else locate_db(args.folder).path
    store = Store(db)
    if not store.exists:
        raise FileNotFoundError(
            f"no dyntools database for {args.folder} (looked for {db}): "
            f"run `dyntools compute {args.folder}` first"
        )
    if not config.features and not config.paper_features:
        config = dataclasses.replace(config, paper_features=True)
    if config.runs is None:
        below = runs_below(store, args.folder, args.task)
        if not below:
            raise LookupError(f"no computed runs below {args.folder} in {db}")
        config = dataclasses.replace(config, runs=below)
    if args.stability < 0:
        raise ValueError(f"--stability takes a number of resamples >= 0, got {args.stability}")
    fitted = outcome = fit_or_load(store, config)
    timing = ""
    stored = fitted.result.stability
    if args.stability and (stored is None or stored.resamples != args.stability):
        print(
            f"checking stability: {args.stability} resamples of the runs ...",
            file=sys.stderr,
            flush=True,
        )
    if args.stability:
        outcome = stability_or_load(store, fitted, resamples=args.stability, workers=None)
        if outcome is not fitted:
            timing = f"; stability in {outcome.seconds:.2f} s"
    if names:
        outcome = name_states(store, outcome, names)
    if args.json:
        json.dump(fit_document(outcome, from_store=fitted.from_store), sys.stdout)
        print()
    else:
        source = "read back from the store" if fitted.from_store else "fitted and stored"
        print(format_fit_report(outcome.result))
        print(f"\n({source} in {fitted.seconds:.2f} s{timing}; database {db})")
    return 0
