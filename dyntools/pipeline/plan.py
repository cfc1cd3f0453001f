"""From discovered runs to work: store rows for runs/checkpoints/scalars, the hook points and
tensors each run computes, and the candidate units the store is asked about.

A unit of work (``WorkUnit``) is one metric of one hook point (or of the whole network) with its
parameters, for one checkpoint; the store answers which units are missing for a checkpoint's
current fingerprint, and only those are computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import polars as pl

from dyntools.checkpoints import CheckpointRef, Run
from dyntools.hookpoints import build_tree
from dyntools.metrics.kinds import HookKind, MetricKind, params_key
from dyntools.metrics.matrices import Cut
from dyntools.metrics.registry import PAPER_FEATURES, metric
from dyntools.pipeline.options import ComputeOptions
from dyntools.roles import QKV, Role, classify
from dyntools.selection import TensorPlan, default_cut, head_count
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
    """One metric of one hook point ('' for the whole network) with its stored parameters.

    ``inputs``: a digest of what the unit is computed from beyond its params (its tensors'
    cuts); a stored unit with other inputs is computed again. ``unrecorded_ok``: a unit stored
    before inputs were recorded (schema 6) still stands, because its tensors are cut as every
    schema has cut them.
    """

    kind: HookKind
    hook_point: str
    metric: str
    params: str
    inputs: str = ""
    unrecorded_ok: bool = True

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies the unit in the store (with the run, step and fingerprint)."""
        return (self.kind.value, self.hook_point, self.metric, self.params)


def fingerprint_text(ref: CheckpointRef) -> str:
    """The stored form of a checkpoint's fingerprint: size, mtime and header digest."""
    fp = ref.fingerprint
    return f"{fp.size}:{fp.mtime_ns}:{fp.digest}"


@dataclass(frozen=True)
class WeightPlan:
    """The weight metrics of one run: which tensors, under which hook point, cut how, and which
    of them the network values take.

    ``tensor_hooks`` maps every metric input tensor to the deepest selected hook point owning
    it; hook-point values average the per-matrix values of all tensors below it. ``tensors``
    holds every selected tensor's role and cut (``selection.TensorPlan``).
    """

    hook_points: tuple[str, ...]
    tensor_hooks: dict[str, str]
    tensors: TensorPlan
    # The params of the network-scope rows: the selection and the hook points it covers.
    network_params: str
    # Tensors the default cut splits per head (kept whole with --no-split-heads).
    splittable: frozenset[str] = frozenset()
    # Hook point ('' for the network values) -> (digest of its inputs, whether a value stored
    # without one still stands): see ``WorkUnit``.
    inputs: Mapping[str, tuple[str, bool]] = field(default_factory=dict)

    def tensors_of(self, hook_point: str) -> list[str]:
        prefix = hook_point + "."
        return [t for t in self.tensor_hooks if t == hook_point or t.startswith(prefix)]

    def params_for(self, hook_point: str, split_heads: bool) -> str:
        """Weight metrics carry a parameter only when they would differ from the default."""
        has_heads = any(t in self.splittable for t in self.tensors_of(hook_point))
        return "" if split_heads or not has_heads else params_key({"split_heads": False})


def weight_plan(
    run: Run, options: ComputeOptions, module_types: Mapping[str, str] | None = None
) -> tuple[WeightPlan, dict[str, str]]:
    """Select hook points from the run's first checkpoint (all checkpoints share shapes), and
    classify their tensors (``module_types``: the rebuilt model's module classes, when known).

    A folder may hold runs of different models, so a pattern that matches nothing in this run is
    not an error here: it is returned (pattern -> why) and the caller decides.
    """
    if not run.checkpoints:
        return WeightPlan((), {}, TensorPlan({}, {}, options.network), ""), {}
    tensors = run.checkpoints[0].tensors
    tree = build_tree(tensors)
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
    selected = [t for t in tensors if t.name in tensor_hooks]
    roles = classify(selected, module_types)
    heads = head_count(run.config)
    shapes = {t.name: t.shape for t in selected}
    split = {
        name: default_cut(name, shapes[name], roles[name], heads, split_heads=True)
        for name in roles
    }
    cuts = (
        split
        if options.split_heads
        else {n: default_cut(n, shapes[n], roles[n], heads, split_heads=False) for n in roles}
    )
    splittable = frozenset(n for n, cut in split.items() if cut.heads is not None)
    hook_points = tuple(path for path in paths if tree[path].metric_inputs)
    network = options.network.params(hook_points) if hook_points else ""
    tensor_plan = TensorPlan(roles, cuts, options.network)
    plan = WeightPlan(hook_points, tensor_hooks, tensor_plan, network, splittable)
    # A hook point's values average every tensor below it (``tensors_of``).
    inputs = {
        hook: (
            _digest([(name, asdict(cuts[name])) for name in names]),
            all(_cut_as_in_schema_1(shapes[name], cuts[name], roles[name]) for name in names),
        )
        for hook in hook_points
        for names in [sorted(plan.tensors_of(hook))]
    }
    pools = tensor_plan.network_pools()
    network_cuts = {
        n: asdict(options.network.cut(n, shapes[n], cuts[n]))
        for n in sorted(roles)
        if pools[n] is not None
    }
    # Schema 1 pooled every tensor into the network values: a value stored without its inputs
    # never stands.
    inputs[NETWORK] = (_digest([(n, cut, pools[n]) for n, cut in network_cuts.items()]), False)
    return dataclasses.replace(plan, inputs=inputs), unmatched


def _digest(described: object) -> str:
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cut_as_in_schema_1(shape: tuple[int, ...], cut: Cut, role: Role) -> bool:
    """Whether schema 1 cut this tensor as ``cut`` does: it cut by rank alone (2-D whole, 3-D
    per head along the first axis, 4-D as a convolution, others not at all), so Conv1d and
    Conv3d weights, fused Q/K/V and reshaped rows are cut otherwise now."""
    if cut.fused is not None or cut.rows:
        return False
    if len(shape) == 3:
        return role.layer in QKV and cut.heads in (None, shape[0]) and not cut.conv
    if len(shape) == 4:
        return cut.heads is None
    return len(shape) <= 2 and cut == Cut()


def weight_units(plan: WeightPlan, options: ComputeOptions) -> list[WorkUnit]:
    """The weight units of a run: every chosen metric of every hook point, and the network
    units (the pooled statistics; the paper's matrix metrics averaged over the network when
    every paper feature is chosen)."""
    chosen = options.weight_metrics
    per_hook = [m for m in chosen if metric(m).metric_kind is not MetricKind.POOLED]
    network = [m for m in chosen if metric(m).metric_kind is MetricKind.POOLED]
    if set(PAPER_FEATURES) <= set(chosen):
        network += [m for m in PAPER_FEATURES if m in per_hook]
    units = [
        WorkUnit(
            HookKind.WEIGHT,
            hook,
            name,
            plan.params_for(hook, options.split_heads),
            *plan.inputs[hook],
        )
        for hook in plan.hook_points
        for name in per_hook
    ]
    if plan.hook_points:
        units += [
            WorkUnit(HookKind.WEIGHT, NETWORK, name, plan.network_params, *plan.inputs[NETWORK])
            for name in network
        ]
    return units


def weight_dtype(ref: CheckpointRef) -> str:
    """The floating-point type of a checkpoint's tensors ("mixed" for several, "" for none)."""
    found = {info.dtype for info in ref.tensors if info.is_float}
    return found.pop() if len(found) == 1 else ("mixed" if found else "")


def candidates(
    run: Run, units: Sequence[WorkUnit], checkpoints: Sequence[CheckpointRef]
) -> pl.DataFrame:
    """Every unit of the checkpoints as ``computed`` rows, with whether a unit stored without its
    inputs still stands (the store answers which are missing)."""
    rows = COMPUTED.frame(
        ComputedRow(
            run.run_id,
            ref.step,
            unit.kind,
            unit.hook_point,
            unit.metric,
            fingerprint_text(ref),
            unit.params,
            unit.inputs,
        )
        for ref in checkpoints
        for unit in units
    )
    return rows.with_columns(
        unrecorded_ok=pl.Series([unit.unrecorded_ok for _ in checkpoints for unit in units])
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
            weight_dtype(ref),
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
