"""The activation units of one checkpoint: rebuild the model, load the weights, run the probe
batch once, capture the chosen modules' outputs, and compute each unit's metric from the
registry (statistics, histograms, information-plane coordinates)."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial

import torch

from dyntools.capture import capture, checkpoint_model
from dyntools.checkpoints import Probe, read_probe
from dyntools.metrics import InformationPlane, layer_output
from dyntools.metrics.hsic import OUTPUTS
from dyntools.metrics.hsic_inputs import AUTO_CODING, NORMALIZED, SOFTMAX, Coding
from dyntools.metrics.kinds import (
    ActivationMetric,
    HistogramMetric,
    HookKind,
    InformationMetric,
    Metric,
    Outcome,
    ParamValue,
)
from dyntools.metrics.records import InformationPoint, LayerOutput, Reason, ReasonCode, Scope
from dyntools.metrics.registry import metric
from dyntools.models.outputs import first_tensor
from dyntools.pipeline.jobs import Job, JobResult, done, error_row
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import WorkUnit, fingerprint_text
from dyntools.store.schema import HistogramRow, MetricRow

# A problem of this job's units (jobs.error_row).
_error = partial(error_row, HookKind.ACTIVATION)


def run_activation_units(
    job: Job, options: ComputeOptions, probe: Probe | None = None
) -> JobResult:
    """Compute the missing activation units of one checkpoint. ``probe``: the run's probe batch
    when the caller already has it (the Ray backend reads it once per run); None reads the
    run's probe file."""
    result = JobResult(job.run.run_id, job.ref.step)
    units = job.activation_units
    if not units:
        return result
    paths = sorted({unit.hook_point for unit in units})
    try:
        if probe is None:
            if job.run.probe is None:
                raise ValueError(
                    f"run {job.run.run_id} has no probe.safetensors: no activation metrics"
                )
            probe = read_probe(job.run.probe)
        model = checkpoint_model(job.run.config, job.ref, factory=options.factory)
        with torch.no_grad(), capture(model, paths) as outputs:
            model_output = first_tensor(model(probe.x))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, MemoryError) as error:
        # TypeError: a run.json whose model arguments the model does not take.
        failed = Reason(ReasonCode.FAILED, str(error) or type(error).__name__)
        result.errors = [_error(job, "forward pass", failed, None)]
        result.failure = f"{job.ref.path}: {error}"
        return result

    planes = _planes(probe, model_output, units)
    by_hook: dict[str, list[WorkUnit]] = defaultdict(list)
    for unit in units:
        by_hook[unit.hook_point].append(unit)
    for hook in paths:
        output = outputs.get(hook)
        if output is None:
            why = Reason(
                ReasonCode.NO_OUTPUT, "the module produced no tensor output in the forward pass"
            )
            result.errors.append(_error(job, hook, why, hook))
            continue
        layer = layer_output(output)
        points: dict[str, InformationPoint | Reason] = {
            variant: plane.hsic(output.reshape(output.shape[0], -1))
            if output.dim() > 0 and output.shape[0] == plane.m
            # e.g. rotary position embeddings: one tensor for the whole batch
            else Reason(
                ReasonCode.UNSUPPORTED_SHAPE,
                f"output of shape {tuple(output.shape)} is not one row per probe sample",
            )
            for variant, plane in planes.items()
        }
        for unit in by_hook[hook]:
            entry = metric(unit.metric)
            if isinstance(entry, HistogramMetric):
                counts = entry.compute(layer, entry.spec(options.params.get(entry.name)))
                result.histograms.append(
                    HistogramRow(
                        job.run.run_id,
                        job.ref.step,
                        HookKind.ACTIVATION,
                        hook,
                        entry.name,
                        list(counts.edges),
                        list(counts.counts),
                        unit.params,
                        counts.underflow,
                        counts.overflow,
                    )
                )
                continue
            value, reason = _value(entry, layer, points, options)
            result.metrics.append(
                MetricRow(
                    job.run.run_id,
                    job.ref.step,
                    HookKind.ACTIVATION,
                    Scope.HOOK_POINT,
                    hook,
                    entry.name,
                    value,
                    params=unit.params,
                )
            )
            if value is None and reason is not None and not reason.expected:
                result.errors.append(_error(job, f"{hook} {entry.name}", reason, hook))
    result.computed = done(job, units, fingerprint_text(job.ref))
    return result


def _value(
    entry: Metric,
    layer: LayerOutput,
    points: dict[str, InformationPoint | Reason],
    options: ComputeOptions,
) -> Outcome:
    if isinstance(entry, InformationMetric):
        point = points.get(entry.variant)
        if point is None:
            return None, Reason(ReasonCode.NO_OUTPUT, "the model produced no tensor output")
        if isinstance(point, Reason):
            return None, point
        return entry.compute(point)
    if not isinstance(entry, ActivationMetric):
        raise TypeError(f"{entry.name!r} is not an activation metric")
    if layer.count == 0:
        return None, Reason(ReasonCode.EMPTY, "empty output")
    if layer.nonfinite:
        why = f"{layer.nonfinite} of {layer.count} values are NaN/inf"
        return None, Reason(ReasonCode.NONFINITE, why)
    return entry.compute(layer, options.params_of(entry.name))


def _planes(
    probe: Probe, model_output: torch.Tensor | None, units: tuple[WorkUnit, ...]
) -> dict[str, InformationPlane]:
    """The information planes the units need, with the codings their stored parameters name;
    X and Y kernels are built once per checkpoint. The default variant compares with the
    labels, PyGlow's with the model's output."""
    params: dict[str, dict[str, ParamValue]] = defaultdict(dict)
    for unit in units:
        entry = metric(unit.metric)
        if isinstance(entry, InformationMetric):
            params[entry.variant].update(json.loads(unit.params) if unit.params else {})
    planes: dict[str, InformationPlane] = {}
    for variant, given in sorted(params.items()):
        inputs = _coding(given.get("inputs"))
        if variant == NORMALIZED:
            labels = _coding(given.get("labels"))
            planes[variant] = InformationPlane(
                probe.x, probe.y, variant=variant, x_coding=inputs, y_coding=labels
            )
        elif model_output is not None:
            output = OUTPUTS[str(given.get("output", SOFTMAX))](model_output)
            planes[variant] = InformationPlane(
                probe.x, output.reshape(output.shape[0], -1), variant=variant, x_coding=inputs
            )
    return planes


def _coding(stored: ParamValue | None) -> Coding | None:
    """A stored coding parameter (None: the probe tensor's own, as ``auto`` resolves)."""
    return None if stored is None or stored == AUTO_CODING else Coding(str(stored))
