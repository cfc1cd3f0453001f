"""The weight units of one checkpoint: per-matrix values, their hook-point and network means,
and the pooled statistics, as store rows."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from functools import partial

import torch

from dyntools.checkpoints import open_checkpoint
from dyntools.metrics import MetricValue, TensorSource, compute_weight_metrics
from dyntools.metrics.kinds import HookKind, MetricKind, Pool
from dyntools.metrics.matrices import Cut
from dyntools.metrics.records import Reason, ReasonCode, Scope
from dyntools.metrics.registry import REGISTRY, metric
from dyntools.metrics.weights import SpectrumCache, WeightMetrics
from dyntools.pipeline.jobs import Job, JobResult, done, error_row
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import NETWORK, WeightPlan, fingerprint_text
from dyntools.store.schema import MetricRow

# A problem of this job's units (jobs.error_row).
_error = partial(error_row, HookKind.WEIGHT)


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
    tensors = plan.tensors
    hooks = {u.hook_point for u in job.weight_units if u.hook_point != NETWORK}
    per_hook = {u.metric for u in job.weight_units if u.hook_point != NETWORK}
    network = [u.metric for u in job.weight_units if u.hook_point == NETWORK]
    # The network values take the selected tensors of every hook point; unless the selection
    # cuts them its own way, they come from the same matrices as the hook points' values.
    apart = bool(network) and tensors.selection.own_cuts
    shared = bool(network) and not apart
    names = (
        list(plan.tensor_hooks)
        if shared
        else [t for t, hook in plan.tensor_hooks.items() if any(_under(t, h) for h in hooks)]
    )
    selected = tensors.network_tensors()
    # One per checkpoint: a matrix both calls cut alike gets one SVD, not two.
    spectra = SpectrumCache()
    try:
        device = _device(options)
        first = _compute(
            job,
            names,
            per_hook | set(network) if shared else per_hook,
            {t: tensors.cuts[t] for t in names},
            tensors.network_pools() if shared else dict.fromkeys(names),
            device,
            spectra,
        )
        second = (
            _compute(
                job,
                selected,
                set(network),
                {t: tensors.selection.cut(t, shapes_of(job)[t], tensors.cuts[t]) for t in selected},
                {t: tensors.network_pools()[t] for t in selected},
                device,
                spectra,
            )
            if apart
            else None
        )
    except MemoryError:
        why = "not enough memory to read and compute it (see docs/metrics.md, 'Cost')"
        result.failure = f"{job.ref.path}: {why}"
        result.errors = [_error(job, "checkpoint", Reason(ReasonCode.FAILED, why), None)]
        return result
    except (OSError, ValueError, RuntimeError) as error:
        result.failure = f"{job.ref.path}: {error}"
        result.errors = [_error(job, "checkpoint", Reason(ReasonCode.FAILED, str(error)), None)]
        return result

    params_of = {hook: plan.params_for(hook, options.split_heads) for hook in plan.hook_points}
    network_source = second or first
    matrix_network = [m for m in network if metric(m).metric_kind is not MetricKind.POOLED]
    network_rows = [
        *(row for row in network_source.pooled if row.metric in network),
        *network_source.network_means(matrix_network, set(selected)),
    ]
    means = _hook_point_means(first.values, {hook: plan.tensors_of(hook) for hook in hooks})
    per_matrix = [v for v in first.values if v.metric in per_hook or shared]
    rows = [*per_matrix, *means, *network_rows]
    result.metrics = [_row(job, value, params_of, plan) for value in rows]
    skipped = [*first.skipped, *(second.skipped if second else ())]
    # Missing values, and kept values rounding dominates, are recorded with their reason.
    result.errors = [
        _error(job, _subject(v), v.reason, v.hook_point)
        for v in rows
        if v.reason is not None
        and not v.reason.expected
        and (v.value is None or v.reason.code is ReasonCode.ROUNDING)
    ] + [
        _error(job, s.tensor, s.reason, plan.tensor_hooks.get(s.tensor, NETWORK))
        for s in skipped
        if not s.reason.expected
    ]
    result.computed = done(job, job.weight_units, fingerprint_text(job.ref))
    return result


def shapes_of(job: Job) -> dict[str, tuple[int, ...]]:
    return {info.name: info.shape for info in job.ref.tensors}


def _subject(value: MetricValue) -> str:
    """What a missing value is of, in words: ``network l1``, ``attn attn.W_Q head 2 l1``."""
    parts = [value.hook_point or "network", value.tensor]
    if value.head is not None:
        parts.append(f"head {value.head}")
    if value.component:
        parts.append(value.component)
    return " ".join(p for p in [*parts, value.metric] if p)


def _compute(
    job: Job,
    names: list[str],
    metrics: set[str],
    cuts: Mapping[str, Cut],
    pools: Mapping[str, Pool | None],
    device: torch.device,
    spectra: SpectrumCache,
) -> WeightMetrics:
    """``compute_weight_metrics`` of one checkpoint on ``device``, with the previous and first
    checkpoints opened only when a temporal metric needs them."""
    temporal = any(metric(m).metric_kind is MetricKind.TEMPORAL for m in metrics)
    with open_checkpoint(job.ref) as source, ExitStack() as others:
        previous = initial = None
        if temporal and job.previous is not None:
            previous = _DeviceSource(others.enter_context(open_checkpoint(job.previous)), device)
        if temporal and job.initial is not None:
            initial = _DeviceSource(others.enter_context(open_checkpoint(job.initial)), device)
        return compute_weight_metrics(
            _DeviceSource(source, device),
            names,
            metrics=sorted(metrics, key=list(REGISTRY).index),
            hook_points={t: job.plan.tensor_hooks[t] for t in names},
            cuts=cuts,
            pools=pools,
            previous=previous,
            initial=initial,
            spectra=spectra,
        )


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
        value.component,
        params,
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
