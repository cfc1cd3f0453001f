"""From discovered runs to work: store rows for runs/checkpoints/scalars, the hook points and
tensors each run computes, and the candidate units the store is asked about.

A unit of work (``WorkUnit``) is one metric of one hook point (or of the whole network) with its
parameters, for one checkpoint; the store answers which units are missing for a checkpoint's
current fingerprint, and only those are computed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import polars as pl

from dyntools.checkpoints import CheckpointRef, Run
from dyntools.hookpoints import build_tree
from dyntools.metrics.kinds import HookKind, MetricKind, params_key
from dyntools.metrics.registry import PAPER_FEATURES, metric
from dyntools.pipeline.options import ComputeOptions
from dyntools.store.schema import (
    CHECKPOINTS,
    COMPUTED,
    RUNS,
    SCALARS,
    CheckpointRow,
    ComputedRow,
    RunRow,
    ScalarRow,
)

# The hook point of a network-scope unit (the mean over every selected matrix, a pooled
# statistic): there is none.
NETWORK = ""


class WorkUnit(NamedTuple):
    """One metric of one hook point ('' for the whole network) with its stored parameters."""

    kind: HookKind
    hook_point: str
    metric: str
    params: str


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
    # The params of the network-scope rows: the hook points they were computed over.
    network_params: str
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
    network = params_key({"hook_points": sorted(hook_points)}) if hook_points else ""
    return WeightPlan(hook_points, tensor_hooks, heads, network, attention_3d), unmatched


def weight_units(plan: WeightPlan, options: ComputeOptions) -> list[WorkUnit]:
    """The weight units of a run: every chosen metric of every hook point, and the network
    units (the pooled statistics; the paper's matrix metrics averaged over the network when
    every paper feature is chosen)."""
    chosen = options.weight_metrics
    per_hook = [m for m in chosen if metric(m).kind is not MetricKind.POOLED]
    network = [m for m in chosen if metric(m).kind is MetricKind.POOLED]
    if set(PAPER_FEATURES) <= set(chosen):
        network += [m for m in PAPER_FEATURES if m in per_hook]
    units = [
        WorkUnit(HookKind.WEIGHT, hook, name, plan.params_for(hook, options.split_heads))
        for hook in plan.hook_points
        for name in per_hook
    ]
    if plan.hook_points:
        units += [WorkUnit(HookKind.WEIGHT, NETWORK, name, plan.network_params) for name in network]
    return units


def candidates(
    run: Run, units: Sequence[WorkUnit], checkpoints: Sequence[CheckpointRef]
) -> pl.DataFrame:
    """Every unit of the checkpoints as ``computed`` rows (the store answers which are missing)."""
    return COMPUTED.frame(
        ComputedRow(
            run.run_id,
            ref.step,
            unit.kind,
            unit.hook_point,
            unit.metric,
            fingerprint_text(ref),
            unit.params,
        )
        for ref in checkpoints
        for unit in units
    )


def run_frames(runs: Sequence[Run]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The runs, checkpoints and training scalars of discovered runs, as store frames."""
    run_rows = RUNS.frame(
        RunRow(
            run.run_id,
            str(run.path),
            run.layout,
            json.dumps(dict(run.config), sort_keys=True, default=str),
        )
        for run in runs
    )
    checkpoint_rows = CHECKPOINTS.frame(
        CheckpointRow(
            run.run_id,
            ref.step,
            str(ref.path),
            ref.fingerprint.size,
            ref.fingerprint.mtime_ns,
            ref.fingerprint.digest,
            fingerprint_text(ref),
            None if ref.epoch is None else float(ref.epoch),
        )
        for run in runs
        for ref in run.checkpoints
    )
    scalar_rows = SCALARS.frame(
        ScalarRow(
            run.run_id, ref.step, name, value, None if ref.epoch is None else float(ref.epoch)
        )
        for run in runs
        for ref in run.checkpoints
        for name, value in ref.scalars.items()
    )
    return run_rows, checkpoint_rows, scalar_rows
