"""``dyntools compute FOLDER``: compute what is missing into the folder's DuckDB store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dyntools.cli.selection_args import add_network_arguments, network_selection_from_args
from dyntools.metrics.builtin import DEFAULT_DEAD_THRESHOLD
from dyntools.metrics.histogram import DEFAULT_HISTOGRAM
from dyntools.metrics.kinds import Param, ParamValue
from dyntools.metrics.registry import REGISTRY, metric
from dyntools.pipeline import ComputeOptions, ComputeSummary, compute, parse_patterns
from dyntools.pipeline.backends import BACKENDS
from dyntools.pipeline.progress import ProgressBar
from dyntools.pipeline.workers import configure_process
from dyntools.selection import NetworkSelection
from dyntools.text import printable


def _metrics_with(name: str) -> tuple[Param, tuple[str, ...]]:
    """A parameter several metrics share (by name), and those metrics."""
    having = [(p, m.name) for m in REGISTRY.values() for p in m.params if p.name == name]
    return having[0][0], tuple(metric for _, metric in having)


# Options that set one parameter of every HSIC metric that has it: --hsic-inputs sets the X
# coding of both variants.
_HSIC_OPTIONS = {f"hsic-{name}": _metrics_with(name) for name in ("inputs", "labels", "output")}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compute",
        help="compute weight (and activation) metrics of every run into the DuckDB store",
        description="Compute metrics for every run below FOLDER. Incremental: what is already "
        "computed from unchanged files is skipped.",
        epilog=metric_glossary(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER")
    add_compute_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=handler)


def add_compute_arguments(parser: argparse.ArgumentParser) -> None:
    """What and how to compute (``dyntools compute`` and ``dyntools watch``)."""
    parser.add_argument(
        "--select",
        action="append",
        metavar="PATTERN",
        help="hook points: exact name, glob (blocks.*.attn) or re:REGEX; "
        "repeat or comma-separate (default: every module with weights)",
    )
    parser.add_argument(
        "--metrics",
        action="append",
        metavar="NAME",
        help="metric names, repeat or comma-separate (default: all weight "
        "metrics, plus activation metrics with --activations)",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="RUN",
        help="run ids to compute (default: every run in FOLDER; see dyntools runs)",
    )
    parser.add_argument(
        "--activations",
        action="store_true",
        help="also run the probe batch and compute activation metrics, "
        "histograms and HSIC (runs with probe.safetensors and a known model)",
    )
    parser.add_argument(
        "--activation-select",
        action="append",
        metavar="PATTERN",
        help="activation hook points (default: every module whose forward runs)",
    )
    parser.add_argument(
        "--factory",
        metavar="MODULE:FUNCTION",
        help="model factory for runs that are not dyntools runs",
    )
    add_network_arguments(parser)
    parser.add_argument(
        "--no-split-heads",
        action="store_true",
        help="keep 3-D attention weights whole instead of one matrix per head",
    )
    parser.add_argument(
        "--dead-threshold",
        type=float,
        help=f"|a| below this counts as dead (default {DEFAULT_DEAD_THRESHOLD:g})",
    )
    parser.add_argument(
        "--bins", type=int, help=f"histogram bins (default {DEFAULT_HISTOGRAM.bins})"
    )
    parser.add_argument(
        "--range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="histogram range of |a| (default 0 10, as fast.ai)",
    )
    for option, (param, _) in _HSIC_OPTIONS.items():
        parser.add_argument(
            f"--{option}",
            choices=param.choices,
            help=f"{param.description} (default {param.default})",
        )
    parser.add_argument(
        "--param",
        action="append",
        metavar="METRIC.NAME=VALUE",
        help="set any metric's parameter, e.g. dead_fraction.threshold=0.01 (every metric's "
        "parameters are listed below); the options above are shortcuts for these",
    )
    parser.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="database file (default: FOLDER/.dyntools/dyntools.duckdb)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="parallel workers; 1 computes in this process (default: all cores when there is "
        "enough work, else 1)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="local",
        help="where the checkpoints are computed: "
        + "; ".join(f"{name}: {entry.description}" for name, entry in BACKENDS.items())
        + " (default local; ray needs pip install 'dyntools[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --backend ray: the Ray cluster to connect to (host:port of its head, "
        "ray://host:10001 for Ray Client, or auto for the one `ray start` or RAY_ADDRESS "
        "names; default: a local Ray instance started for this compute)",
    )


def metric_glossary() -> str:
    """Every metric of the registry with its kind and description, for --help."""
    width = max(len(name) for name in REGISTRY)
    lines = [
        f"  {entry.name:<{width}}  {entry.hook_kind.value:<10}  {entry.description}"
        + "".join(
            f"\n  {'':<{width}}  {'':<10}  --param {entry.name}.{p.name}=... "
            f"(default {p.default}): {p.description}"
            for p in entry.params
        )
        for entry in REGISTRY.values()
    ]
    return "metrics (name, kind of hook point, definition, parameters):\n" + "\n".join(lines)


def print_summary(summary: ComputeSummary) -> None:
    print(
        f"{summary.runs} runs, {summary.checkpoints} checkpoints: {summary.computed} computed, "
        f"{summary.skipped} already up to date, {len(summary.failed)} failed "
        f"({summary.values_written} values in {summary.seconds:.1f} s) -> {summary.db}"
    )
    for note in summary.notes:
        print(f"note: {printable(note)}")
    for failure in summary.failed:
        print(f"failed: {printable(failure.reason)}")
    if summary.problems:
        print(f"{len(summary.problems)} problems found while reading the folder:")
        for problem in summary.problems:
            print(f"  {printable(problem)}")


def metric_params(args: argparse.Namespace) -> dict[str, dict[str, ParamValue]]:
    """The metric parameters the options set (the registry's defaults for the rest)."""
    params: dict[str, dict[str, ParamValue]] = {}
    for option, (param, metrics) in _HSIC_OPTIONS.items():
        value = getattr(args, option.replace("-", "_"))
        if value is not None:
            for name in metrics:
                params.setdefault(name, {})[param.name] = value
    if args.dead_threshold is not None:
        params["dead_fraction"] = {"threshold": args.dead_threshold}
    histogram: dict[str, ParamValue] = {}
    if args.bins is not None:
        histogram["bins"] = args.bins
    if args.range is not None:
        histogram["low"], histogram["high"] = args.range
    if histogram:
        params["histogram"] = histogram
    for text in args.param or ():
        name, parameter, value = parse_param(text)
        params.setdefault(name, {})[parameter] = value
    return params


def parse_param(text: str) -> tuple[str, str, ParamValue]:
    """``METRIC.NAME=VALUE`` -> (metric, parameter, value), checked against the registry."""
    assignment, equals, value = text.partition("=")
    name, dot, param = assignment.strip().rpartition(".")
    if not (equals and dot and name and param):
        raise ValueError(f"--param {text!r}: write METRIC.NAME=VALUE, e.g. histogram.bins=80")
    entry = metric(name)  # an unknown metric raises, listing the known ones
    known = {p.name: p for p in entry.params}
    if param not in known:
        raise ValueError(
            f"--param {text!r}: metric {name!r} has no parameter {param!r}; "
            f"its parameters: {sorted(known) or 'none'}"
        )
    return name, param, known[param].parse(value.strip(), name)


def options_from_args(args: argparse.Namespace) -> ComputeOptions:
    """The compute options of ``add_compute_arguments``' arguments."""
    return ComputeOptions(
        select=parse_patterns(args.select),
        metrics=parse_patterns(args.metrics),
        activations=args.activations,
        activation_select=parse_patterns(args.activation_select),
        factory=args.factory,
        runs=tuple(args.runs or ()),
        split_heads=not args.no_split_heads,
        network=network_selection_from_args(args) or NetworkSelection(),
        params=metric_params(args),
        workers=args.workers,
        device=args.device,
        backend=args.backend,
        ray_address=args.ray_address,
    )


def handler(args: argparse.Namespace) -> int:
    if not args.folder.exists():
        raise FileNotFoundError(f"{args.folder} does not exist: check the path")
    options = options_from_args(args)
    # This process computes and nothing else: it gets the workers' settings too.
    configure_process()
    bar: ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total, "checkpoints")
        else:
            bar.advance(done - bar.done)

    summary = compute(args.folder, options, db=args.db, progress=progress)
    if bar is not None:
        bar.close()
    if args.json:
        json.dump(summary.to_json(), sys.stdout, indent=2)
        print()
    else:
        print_summary(summary)
    return 1 if summary.failed and not summary.computed else 0
