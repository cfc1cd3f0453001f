"""``dyntools probe FOLDER --from FILE``: make the probe batch of runs that carry none (Hugging
Face Trainer runs, hub suites), so that their activations and information plane can be computed.

One probe per task (every seed of a suite shares it), written beside the folder's database
(``FOLDER/.dyntools/probes/``, or the per-user cache when FOLDER is read-only): the checkpoint
folders themselves, often a shared hub cache, are never written to.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dyntools.checkpoints import Run, discover_runs, write_probe
from dyntools.pipeline.probes import DEFAULT_LENGTH, DEFAULT_SEQUENCES, ProbeRequest, make_probe
from dyntools.pipeline.runner import chosen_runs
from dyntools.store import locate_db
from dyntools.store.location import probe_path
from dyntools.text import path_text, printable


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="make the probe batch of runs without one (Hugging Face runs, hub suites)",
        description="Make the probe batch the activation metrics and the information plane "
        "run: token sequences for a language model (x: LENGTH token ids, y: the next token at "
        "each position), or a classifier's inputs and labels. One probe per task, kept beside "
        "the database; runs with a probe.safetensors of their own keep theirs.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="the folder of runs")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FILE",
        help="a plain text file (.txt, tokenized with the run's own tokenizer files), token "
        "ids (.npy or .safetensors: a 1-D stream, or rows of LENGTH + 1 ids), or a classifier's "
        "inputs and labels (.safetensors with x and y, or .npy inputs with --labels)",
    )
    parser.add_argument(
        "--labels", type=Path, metavar="FILE", help="labels (.npy) of a classifier's inputs"
    )
    parser.add_argument(
        "--sequences",
        type=int,
        metavar="N",
        help=f"samples in the probe, at most 512 (default: {DEFAULT_SEQUENCES} token "
        "sequences, or every input up to 512)",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=DEFAULT_LENGTH,
        metavar="L",
        help=f"tokens per sequence (default {DEFAULT_LENGTH})",
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--runs", nargs="+", metavar="RUN", help="runs whose tasks get the probe")
    chosen.add_argument("--task", metavar="TASK", help="the task that gets the probe")
    parser.add_argument(
        "--force", action="store_true", help="replace a probe made before for the same task"
    )
    parser.set_defaults(func=handler)


def _tasks(runs: list[Run], args: argparse.Namespace) -> dict[str, Run]:
    """Each task to make a probe for, with the run whose tokenizer reads text (its first)."""
    if args.task is not None:
        runs = [run for run in runs if run.task == args.task]
        if not runs:
            raise LookupError(f"no run of task {args.task!r} in {args.folder}")
    without = [run for run in runs if run.probe is None]
    if not without:
        raise LookupError(
            f"every chosen run in {args.folder} has a probe.safetensors of its own: nothing to do"
        )
    tasks: dict[str, Run] = {}
    for run in without:
        tasks.setdefault(run.task, run)
    return tasks


def handler(args: argparse.Namespace) -> int:
    request = ProbeRequest(args.source, args.labels, args.sequences, args.length)
    found = discover_runs(args.folder)
    runs = chosen_runs(found.runs, tuple(args.runs or ()))
    location = locate_db(args.folder)
    if location.note:
        print(location.note)
    for task, run in _tasks(runs, args).items():
        path = probe_path(location.path, task)
        if path.exists() and not args.force:
            raise FileExistsError(
                f"{path_text(path)} holds the probe made before for {task}: pass --force to "
                "replace it (activations computed with it stay stored, and are not computed "
                "again with the new one)"
            )
        probe = make_probe(request, run)
        write_probe(path, probe.x, probe.y)
        print(
            f"{printable(task)}: probe of {probe.x.shape[0]} samples, x {tuple(probe.x.shape)} "
            f"{str(probe.x.dtype).removeprefix('torch.')}, y {tuple(probe.y.shape)} -> "
            f"{printable(path_text(path))}"
        )
    print(f"next: dyntools compute {printable(str(args.folder))} --activations")
    return 0
