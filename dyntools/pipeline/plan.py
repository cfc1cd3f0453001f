"""From discovered runs to work: store frames for runs/checkpoints/scalars, the hook points and
tensors each run computes, and the candidate units the store is asked about.

A unit of work is (run, step, hook point, metric, params); the store answers which units are
missing for a checkpoint's current fingerprint, and only those are computed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from dyntools.checkpoints import CheckpointRef, Run
from dyntools.hookpoints import build_tree
from dyntools.metrics import ALL_HOOK_POINTS, PAPER_FEATURES
from dyntools.metrics.registry import REGISTRY
from dyntools.pipeline.options import ComputeOptions
from dyntools.store import params_key

# The unit under which the paper's 14-feature aggregate is bookkept.
PAPER_FEATURES_METRIC = "paper_features"
COMPUTED_COLUMNS = ("run_id", "step", "hook_point", "metric", "params", "fingerprint")


def fingerprint_text(ref: CheckpointRef) -> str:
    """The stored form of a checkpoint's fingerprint: size, mtime and header digest."""
    fp = ref.fingerprint
    return f"{fp.size}:{fp.mtime_ns}:{fp.digest}"


@dataclass(frozen=True)
class WeightPlan:
    """The weight metrics of one run: which tensors, under which hook point, split how.

    ``tensor_hooks`` maps every metric input tensor to the deepest selected hook point owning
    it; hook-point values (tensor '') average the per-matrix values of all tensors below it.
    """

    hook_points: tuple[str, ...]
    tensor_hooks: dict[str, str]
    heads: dict[str, int]
    pooled_params: str
    # 3-D attention weights (n_heads, d_head, d_model), split per head unless asked not to.
    attention_3d: frozenset[str] = frozenset()

    def tensors_of(self, hook_point: str) -> list[str]:
        prefix = hook_point + "."
        return [t for t in self.tensor_hooks if t == hook_point or t.startswith(prefix)]

    def params_for(self, hook_point: str, split_heads: bool) -> str:
        """Weight metrics carry a parameter only when they would differ from the default."""
        has_3d = any(t in self.attention_3d for t in self.tensors_of(hook_point))
        return "" if split_heads or not has_3d else params_key({"split_heads": False})


def weight_plan(run: Run, options: ComputeOptions) -> tuple[WeightPlan, dict[str, str]]:
    """Select hook points from the run's first checkpoint (all checkpoints share shapes).

    A folder may hold runs of different models, so a pattern that matches nothing in this run is
    not an error here: it is returned (pattern -> why) and the caller decides.
    """
    if not run.checkpoints:
        return WeightPlan((), {}, {}, ""), {}
    tree = build_tree(run.checkpoints[0].tensors)
    unmatched: dict[str, str] = {}
    if options.select:
        chosen = []
        for pattern in options.select:
            try:
                chosen.extend(tree.select([pattern]))
            except ValueError as error:
                unmatched[pattern] = str(error)
    else:
        chosen = tree.natural()
    paths = sorted({hp.path for hp in chosen}, key=lambda p: (p.count("."), p))
    tensor_hooks: dict[str, str] = {}
    for path in paths:  # shallow first, so deeper hook points overwrite: deepest owner wins
        for entry in tree[path].metric_inputs:
            tensor_hooks[entry.name] = path
    shapes = {entry.name: entry.shape for entry in run.checkpoints[0].tensors}
    attention_3d = frozenset(name for name in tensor_hooks if len(shapes[name]) == 3)
    heads = {name: shapes[name][0] for name in attention_3d} if options.split_heads else {}
    hook_points = tuple(path for path in paths if tree[path].metric_inputs)
    pooled = params_key({"hook_points": sorted(hook_points)}) if hook_points else ""
    return WeightPlan(hook_points, tensor_hooks, heads, pooled, attention_3d), unmatched


def weight_units(plan: WeightPlan, options: ComputeOptions) -> list[tuple[str, str, str]]:
    """(hook point, metric, params) units of a run's weight metrics."""
    units: list[tuple[str, str, str]] = []
    per_hook = [m for m in options.weight_metrics if REGISTRY[m].family != "pooled"]
    pooled = [m for m in options.weight_metrics if REGISTRY[m].family == "pooled"]
    for hook in plan.hook_points:
        params = plan.params_for(hook, options.split_heads)
        units.extend((hook, metric, params) for metric in per_hook)
    if plan.hook_points:
        units.extend((ALL_HOOK_POINTS, metric, plan.pooled_params) for metric in pooled)
        if wants_paper_features(options):
            units.append((ALL_HOOK_POINTS, PAPER_FEATURES_METRIC, plan.pooled_params))
    return units


def wants_paper_features(options: ComputeOptions) -> bool:
    return set(PAPER_FEATURES) <= set(options.weight_metrics)


def candidates(
    run: Run, units: Sequence[tuple[str, str, str]], checkpoints: Sequence[CheckpointRef]
) -> pl.DataFrame:
    """Every (run, step, hook point, metric, params, fingerprint) unit of the checkpoints."""
    rows = [
        (run.run_id, ref.step, hook, metric, params, fingerprint_text(ref))
        for ref in checkpoints
        for hook, metric, params in units
    ]
    return pl.DataFrame(rows, schema=list(COMPUTED_COLUMNS), orient="row")


def run_frames(runs: Sequence[Run]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The runs, checkpoints and training scalars of discovered runs, as store frames."""
    run_rows = [
        {
            "run_id": run.run_id,
            "path": str(run.path),
            "layout": run.layout,
            "config_json": json.dumps(dict(run.config), sort_keys=True, default=str),
        }
        for run in runs
    ]
    checkpoint_rows = [
        {
            "run_id": run.run_id,
            "step": ref.step,
            "epoch": None if ref.epoch is None else float(ref.epoch),
            "path": str(ref.path),
            "size": ref.fingerprint.size,
            "mtime_ns": ref.fingerprint.mtime_ns,
            "header_hash": ref.fingerprint.digest,
            "fingerprint": fingerprint_text(ref),
        }
        for run in runs
        for ref in run.checkpoints
    ]
    scalar_rows = [
        {
            "run_id": run.run_id,
            "step": ref.step,
            "epoch": None if ref.epoch is None else float(ref.epoch),
            "name": name,
            "value": value,
        }
        for run in runs
        for ref in run.checkpoints
        for name, value in ref.scalars.items()
    ]
    return (
        pl.DataFrame(
            run_rows,
            schema={
                "run_id": pl.String,
                "path": pl.String,
                "layout": pl.String,
                "config_json": pl.String,
            },
        ),
        pl.DataFrame(
            checkpoint_rows,
            schema={
                "run_id": pl.String,
                "step": pl.Int64,
                "epoch": pl.Float64,
                "path": pl.String,
                "size": pl.Int64,
                "mtime_ns": pl.Int64,
                "header_hash": pl.String,
                "fingerprint": pl.String,
            },
        ),
        pl.DataFrame(
            scalar_rows,
            schema={
                "run_id": pl.String,
                "step": pl.Int64,
                "epoch": pl.Float64,
                "name": pl.String,
                "value": pl.Float64,
            },
        ),
    )
