"""The work of one checkpoint, run in a worker process: read, compute, return tidy frames.

Workers compute; only the parent process writes to the store (DuckDB allows one writer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import torch

from dyntools.checkpoints import CheckpointRef, Run, open_checkpoint
from dyntools.metrics import (
    ALL_HOOK_POINTS,
    PAPER_FEATURES,
    MetricValue,
    TensorSource,
    compute_weight_metrics,
)
from dyntools.metrics.registry import REGISTRY
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import PAPER_FEATURES_METRIC, WeightPlan, fingerprint_text
from dyntools.pipeline.rows import (
    COMPUTED_SCHEMA,
    ERROR_SCHEMA,
    HISTOGRAM_SCHEMA,
    METRIC_SCHEMA,
    computed_frame,
    error_frame,
    hook_point_means,
    metric_frame,
)


@dataclass(frozen=True)
class Job:
    """The missing units of one checkpoint.

    ``weight_units``/``activation_units``: (hook point, metric, params) to compute.
    ``previous``/``initial``: the run's previous and first checkpoints, for temporal metrics.
    """

    run: Run
    ref: CheckpointRef
    plan: WeightPlan
    weight_units: tuple[tuple[str, str, str], ...]
    activation_units: tuple[tuple[str, str, str], ...] = ()
    previous: CheckpointRef | None = None
    initial: CheckpointRef | None = None


@dataclass
class JobResult:
    """Frames for the store, plus the one-line reason if the whole checkpoint failed."""

    run_id: str
    step: int
    metrics: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=METRIC_SCHEMA))
    histograms: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=HISTOGRAM_SCHEMA))
    errors: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ERROR_SCHEMA))
    computed: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=COMPUTED_SCHEMA))
    failure: str | None = None


def _device(options: ComputeOptions) -> torch.device:
    if options.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here; use --device cpu")
    if options.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(options.device)


class _DeviceSource:
    """A tensor source whose reads land on the compute device (SVDs then run there)."""

    def __init__(self, source: TensorSource, device: torch.device) -> None:
        self._source = source
        self._device = device

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._source.shape(name))

    def read(self, name: str) -> torch.Tensor:
        return self._source.read(name).to(self._device)


def run_weight_units(job: Job, options: ComputeOptions) -> JobResult:
    """Compute the missing weight units of one checkpoint."""
    result = JobResult(job.run.run_id, job.ref.step)
    if not job.weight_units:
        return result
    plan = job.plan
    hooks = {hook for hook, _, _ in job.weight_units if hook != ALL_HOOK_POINTS}
    wants_pooled = any(hook == ALL_HOOK_POINTS for hook, _, _ in job.weight_units)
    metrics = {m for _, m, _ in job.weight_units if m != PAPER_FEATURES_METRIC}
    if any(m == PAPER_FEATURES_METRIC for _, m, _ in job.weight_units):
        metrics |= set(PAPER_FEATURES)
    # Pooled statistics pool every selected tensor, so they need them all.
    names = (
        list(plan.tensor_hooks)
        if wants_pooled
        else [t for t, hook in plan.tensor_hooks.items() if any(_under(t, h) for h in hooks)]
    )
    temporal = {m for m in metrics if REGISTRY[m].family == "temporal"}
    device = _device(options)
    try:
        with open_checkpoint(job.ref) as source:
            previous = open_checkpoint(job.previous) if job.previous and temporal else None
            initial = open_checkpoint(job.initial) if job.initial and temporal else None
            try:
                computed = compute_weight_metrics(
                    _DeviceSource(source, device),
                    names,
                    metrics=sorted(metrics, key=list(REGISTRY).index),
                    hook_points={t: plan.tensor_hooks[t] for t in names},
                    heads={t: h for t, h in plan.heads.items() if t in names},
                    previous=_DeviceSource(previous, device) if previous else None,
                    initial=_DeviceSource(initial, device) if initial else None,
                )
            finally:
                for other in (previous, initial):
                    if other is not None:
                        other.close()
    except (OSError, ValueError, RuntimeError) as error:
        result.failure = f"{job.ref.path}: {error}"
        result.errors = error_frame(
            [(job.run.run_id, job.ref.step, str(job.ref.path), "weights", "checkpoint", str(error))]
        )
        return result

    params_of = {hook: plan.params_for(hook, options.split_heads) for hook in plan.hook_points}
    params_of[ALL_HOOK_POINTS] = plan.pooled_params
    rows: list[MetricValue] = list(computed.values)
    if wants_pooled:
        rows += list(computed.pooled)
        if any(m == PAPER_FEATURES_METRIC for _, m, _ in job.weight_units):
            rows += list(computed.paper_features())
    per_tensor = metric_frame(job.run.run_id, job.ref.step, rows, params_of)
    owners = {hook: plan.tensors_of(hook) for hook in hooks}
    means = hook_point_means(
        per_tensor.filter(pl.col("hook_point") != ALL_HOOK_POINTS), owners
    ).with_columns(pl.col("hook_point").replace_strict(params_of).alias("params"))
    result.metrics = pl.concat([per_tensor, means])
    reasons = [
        (
            job.run.run_id,
            job.ref.step,
            str(job.ref.path),
            "weights",
            f"{v.hook_point}/{v.tensor}/{v.metric}",
            v.reason,
        )
        for v in rows
        # The first checkpoint has no previous one: an expected gap, not a problem.
        if v.value is None and v.reason and not v.reason.startswith("no previous")
    ] + [
        (
            job.run.run_id,
            job.ref.step,
            str(job.ref.path),
            "weights",
            skipped.tensor,
            f"no per-matrix metrics: {skipped.reason}",
        )
        for skipped in computed.skipped
        # A rank that has no per-matrix metrics (LayerNorm scales) is expected, not a problem.
        if "-D tensor" not in skipped.reason
    ]
    result.errors = error_frame(reasons)
    fingerprint = fingerprint_text(job.ref)
    result.computed = computed_frame(
        [
            (job.run.run_id, job.ref.step, hook, metric, params, fingerprint)
            for hook, metric, params in job.weight_units
        ]
    )
    return result


def _under(tensor: str, hook: str) -> bool:
    return tensor == hook or tensor.startswith(hook + ".")
