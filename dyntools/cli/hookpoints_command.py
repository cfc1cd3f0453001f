"""``dyntools hookpoints FOLDER [--run RUN] [--select PATTERN ...] [--json]``.

Weight hook points come from the tensors of the run's first checkpoint; with ``--activations``
the run's model is rebuilt (from ``run.json``, or ``--factory package.module:function``) and its
named modules are listed instead.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dyntools.checkpoints import Discovery, Run, discover_runs
from dyntools.cli.selection_args import add_network_arguments, network_selection_from_args
from dyntools.hookpoints import HookPoint, build_tree, select_paths
from dyntools.roles import classify
from dyntools.selection import NetworkSelection
from dyntools.text import printable

SCHEMA = 1


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hookpoints",
        help="list (and try selections of) a run's hook points",
        description="List the hook points of a run: the module tree of its checkpoint tensors "
        "(or, with --activations, the named modules of its rebuilt model).",
    )
    parser.add_argument("folder", metavar="FOLDER", help="a run folder, or a folder of runs")
    parser.add_argument("--run", metavar="RUN", help="run id (see `dyntools runs`); default: first")
    parser.add_argument(
        "--select",
        metavar="PATTERN",
        nargs="+",
        help="exact names, globs (blocks.*.attn, ** crosses dots) or regexes (re:blocks\\.[01])",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (schema 1)")
    parser.add_argument(
        "--activations", action="store_true", help="list the model's modules instead of weights"
    )
    parser.add_argument(
        "--roles",
        action="store_true",
        help="list every tensor's role and whether the paper features take it",
    )
    parser.add_argument(
        "--factory",
        metavar="MODULE:FUNCTION",
        help="build the model with this function (imported only because you name it)",
    )
    add_network_arguments(parser)
    parser.set_defaults(func=handler)


def pick_run(found: Discovery, run_id: str | None) -> Run:
    """The run asked for, or the first one found."""
    if run_id is not None:
        return found.run(run_id)
    if not found.runs:
        problems = "; ".join(p.message() for p in found.all_problems())
        raise LookupError(f"no run found in {found.root}: {problems}")
    return found.runs[0]


def hook_point_json(node: HookPoint) -> dict[str, Any]:
    return {
        "path": node.path,
        "parent": node.parent,
        "depth": node.depth,
        "natural": node.natural,
        "parameters": node.parameters,
        "tensors": [
            {
                "name": t.name,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "metric_input": t.is_float,
            }
            for t in node.tensors
        ],
    }


def _weights(run: Run, select: list[str] | None) -> tuple[dict[str, Any], list[str]]:
    if not run.checkpoints:
        raise LookupError(
            f"run {run.run_id!r} has no readable checkpoint; see its problems with "
            f"`dyntools runs {run.path}`"
        )
    checkpoint = run.checkpoints[0]
    tree = build_tree(checkpoint.tensors)
    nodes = tree.select(select) if select else list(tree.nodes.values())
    payload = {
        "kind": "weights",
        "checkpoint": {
            "step": checkpoint.step,
            "epoch": checkpoint.epoch,
            "path": str(checkpoint.path),
        },
        "hook_points": [hook_point_json(node) for node in nodes],
    }
    lines = []
    for node in nodes:
        depth = 0 if select else node.depth  # the whole tree is indented, a selection flat
        flag = "" if node.metric_inputs else "  (no float tensors: not a metric input)"
        lines.append(f"{'  ' * depth}{node.path}  {node.parameters:,} params{flag}")
        for tensor in node.direct:
            note = "" if tensor.is_float else "  [not a metric input]"
            lines.append(
                f"{'  ' * (depth + 1)}. {tensor.name.rsplit('.', 1)[-1]} "
                f"{list(tensor.shape)} {tensor.dtype}{note}"
            )
    return payload, lines


def _activations(
    run: Run, select: list[str] | None, factory: str | None
) -> tuple[dict[str, Any], list[str]]:
    # Imported here: rebuilding a model needs the model registry, listing weights does not.
    from dyntools.capture import activation_hook_points

    points = activation_hook_points(run.config, factory=factory)
    if select:
        keep = set(select_paths([p.path for p in points], select))
        points = [p for p in points if p.path in keep]
    payload = {
        "kind": "activations",
        "checkpoint": None,
        "hook_points": [
            {"path": p.path, "type": p.module_type, "parameters": p.parameters, "leaf": p.is_leaf}
            for p in points
        ],
    }
    lines = [
        f"{'  ' * p.path.count('.')}{p.path}  {p.module_type}  {p.parameters:,} params"
        for p in points
    ]
    return payload, lines


def _roles(
    run: Run, select: list[str] | None, factory: str | None, selection: NetworkSelection
) -> tuple[dict[str, Any], list[str]]:
    # Imported here: the module types come from the rebuilt model (torch), when it can be.
    from dyntools.pipeline.options import ComputeOptions
    from dyntools.pipeline.runner import rebuilt_model

    if not run.checkpoints:
        raise LookupError(f"run {run.run_id!r} has no readable checkpoint")
    options = ComputeOptions(factory=factory, network=selection)
    # Every tensor: non-float ones (position ids, masks, counters) are buffers, never taken.
    tensors = list(run.checkpoints[0].tensors)
    if select:
        owned = {e.name for hp in build_tree(tensors).select(select) for e in hp.tensors}
        tensors = [t for t in tensors if t.name in owned]
    model = rebuilt_model(run, options)
    roles = classify(tensors, model.module_types)
    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "layer": roles[t.name].layer.value,
            "part": roles[t.name].part.value,
            "network": selection.includes(t.name, roles[t.name]),
        }
        for t in tensors
    ]
    payload = {
        "kind": "roles",
        "checkpoint": {"step": run.checkpoints[0].step, "path": str(run.checkpoints[0].path)},
        "selection": selection.describe(),
        "module_types": model.module_types is not None,
        "tensors": rows,
    }
    width = max((len(r["name"]) for r in rows), default=0)
    lines = [f"{'TENSOR':<{width}}  {'ROLE':<22}  PAPER  SHAPE"]
    lines += [
        f"{r['name']:<{width}}  {r['layer'] + ' ' + r['part']:<22}  "
        f"{'yes' if r['network'] else '-':<5}  {r['shape']}"
        for r in rows
    ]
    how = "module types and names" if model.module_types else "names and shapes"
    taken = sum(bool(r["network"]) for r in rows)
    lines.append(
        f"{taken} of {len(rows)} tensors enter the paper features "
        f"({selection.preset.value} selection; roles from {how})"
    )
    return payload, lines


def handler(args: argparse.Namespace) -> int:
    found = discover_runs(args.folder)
    run = pick_run(found, args.run)
    if args.roles:
        selection = network_selection_from_args(args) or NetworkSelection()
        payload, lines = _roles(run, args.select, args.factory, selection)
    elif args.activations:
        payload, lines = _activations(run, args.select, args.factory)
    else:
        payload, lines = _weights(run, args.select)
    if args.json:
        document = {"schema": SCHEMA, "folder": str(found.root), "run": run.run_id}
        document.update(payload)
        print(json.dumps(document, indent=2))
        return 0
    several = len(found.runs) > 1 and args.run is None
    others = f" (1 of {len(found.runs)} runs; choose with --run)" if several else ""
    where = payload["checkpoint"]
    source = f", step {where['step']}" if where else ""
    what = "tensor roles" if args.roles else f"{payload['kind']} hook points"
    print(f"run {printable(run.run_id)}{others}: {what}{source}")
    print("\n".join(printable(line) for line in lines))
    return 0
