"""The weight units of one checkpoint: per-matrix values, their hook-point and network means,
and the pooled statistics, as store rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

import torch

from dyntools.checkpoints import CheckpointReader, open_checkpoint
from dyntools.metrics import MetricValue, TensorSource, compute_weight_metrics
from dyntools.metrics.kinds import HookKind, MetricKind
from dyntools.metrics.records import Reason, ReasonCode, Scope
from dyntools.metrics.registry import REGISTRY, metric
from dyntools.pipeline.jobs import Job, JobResult, done
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import NETWORK, WeightPlan, fingerprint_text
from dyntools.store.schema import ErrorRow, MetricRow

STAGE = "weights"


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


def _under(tensor: str, hook: str) -> bool:
    return tensor == hook or tensor.startswith(hook + ".")


def run_weight_units(job: Job, options: ComputeOptions) -> JobResult:
    """Compute the missing weight units of one checkpoint."""
    result = JobResult(job.run.run_id, job.ref.step)
    if not job.weight_units:
        return result
    plan = job.plan
    hooks = {u.hook_point for u in job.weight_units if u.hook_point != NETWORK}
    network = [u.metric for u in job.weight_units if u.hook_point == NETWORK]
    metrics = {u.metric for u in job.weight_units}
    # Network units pool or average every selected tensor, so they need them all.
    names = (
        list(plan.tensor_hooks)
        if network
        else [t for t, hook in plan.tensor_hooks.items() if any(_under(t, h) for h in hooks)]
    )
    temporal = any(metric(m).kind is MetricKind.TEMPORAL for m in metrics)
    try:
        device = _device(options)
        with open_checkpoint(job.ref) as source:
            others: list[CheckpointReader] = []
            try:
                previous = initial = None
                if temporal and job.previous is not None:
                    previous = open_checkpoint(job.previous)
                    others.append(previous)
                if temporal and job.initial is not None:
                    initial = open_checkpoint(job.initial)
                    others.append(initial)
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
                for other in others:
                    other.close()
    except (OSError, ValueError, RuntimeError) as error:
        result.failure = f"{job.ref.path}: {error}"
        result.errors = [_error(job, "checkpoint", Reason(ReasonCode.FAILED, str(error)))]
        return result

    params_of = {hook: plan.params_for(hook, options.split_heads) for hook in plan.hook_points}
    network_rows = [row for row in computed.pooled if row.metric in network]
    matrix_network = [m for m in network if metric(m).kind is not MetricKind.POOLED]
    network_rows += computed.network_means(matrix_network)
    means = _hook_point_means(computed.values, {hook: plan.tensors_of(hook) for hook in hooks})
    rows = [*computed.values, *means, *network_rows]
    result.metrics = [_row(job, value, params_of, plan) for value in rows]
    result.errors = [
        _error(
            job, f"{v.hook_point or 'network'} {v.tensor} {v.metric}".replace("  ", " "), v.reason
        )
        for v in rows
        if v.value is None and v.reason is not None and not v.reason.expected
    ] + [
        _error(job, skipped.tensor, skipped.reason)
        for skipped in computed.skipped
        if not skipped.reason.expected
    ]
    result.computed = done(job, job.weight_units, fingerprint_text(job.ref))
    return result


def _row(job: Job, value: MetricValue, params_of: Mapping[str, str], plan: WeightPlan) -> MetricRow:
    params = (
        plan.network_params if value.scope is Scope.NETWORK else params_of.get(value.hook_point, "")
    )
    return MetricRow(
        job.run.run_id,
        job.ref.step,
        HookKind.WEIGHT,
        value.scope,
        value.hook_point,
        value.metric,
        value.value,
        value.tensor,
        value.head,
        params,
    )


def _error(job: Job, what: str, reason: Reason) -> ErrorRow:
    return ErrorRow(
        str(job.ref.path), STAGE, what, reason.code, reason.message, job.run.run_id, job.ref.step
    )


def _hook_point_means(
    values: Iterable[MetricValue], owners: Mapping[str, list[str]]
) -> list[MetricValue]:
    """Hook-point values: the mean over every per-matrix value of the tensors a hook point owns
    (NaN and missing values left out; a hook point whose values are all missing gets None)."""
    by_tensor: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    for row in values:
        by_tensor[(row.tensor, row.metric)].append(row.value)
    metrics = list(dict.fromkeys(row.metric for row in values))
    means = []
    for hook, tensors in owners.items():
        for name in metrics:
            found = [v for t in tensors for v in by_tensor.get((t, name), ())]
            if not found:
                continue
            numbers = [v for v in found if v is not None and not math.isnan(v)]
            mean = math.fsum(numbers) / len(numbers) if numbers else None
            means.append(MetricValue(Scope.HOOK_POINT, hook, "", None, name, mean))
    return means
