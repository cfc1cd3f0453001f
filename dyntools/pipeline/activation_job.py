"""Activation metrics of one checkpoint: rebuild the model, load the weights, run the probe batch
once, capture the selected modules' outputs, and compute statistics, histograms and HSIC.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import torch

from dyntools.capture import capture, first_tensor, load_weights, rebuild_model
from dyntools.checkpoints import CheckpointRef, Probe, Run, read_probe
from dyntools.metrics import InformationPlane, activation_stats, histogram
from dyntools.pipeline.options import HISTOGRAM_METRIC, ComputeOptions
from dyntools.pipeline.plan import fingerprint_text
from dyntools.pipeline.rows import (
    ERROR_SCHEMA,
    HISTOGRAM_SCHEMA,
    METRIC_SCHEMA,
    computed_frame,
    error_frame,
)
from dyntools.store import params_key


def run_activation_units(
    run: Run, ref: CheckpointRef, units: Sequence[tuple[str, str, str]], options: ComputeOptions
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(metrics, histograms, errors, computed) frames for one checkpoint's activation units."""
    empty = (
        pl.DataFrame(schema=METRIC_SCHEMA),
        pl.DataFrame(schema=HISTOGRAM_SCHEMA),
        pl.DataFrame(schema=ERROR_SCHEMA),
    )
    if not units:
        return (*empty, computed_frame([]))
    try:
        if run.probe is None:
            raise ValueError(f"run {run.run_id} has no probe.safetensors: no activation metrics")
        probe = read_probe(run.probe)
        model = rebuild_model(run.config, factory=options.factory)
        load_weights(model, ref)
        model.eval()
        paths = sorted({hook for hook, _, _ in units})
        with torch.no_grad(), capture(model, paths) as outputs:
            model_output = first_tensor(model(probe.x))
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        errors = error_frame(
            [(run.run_id, ref.step, str(ref.path), "activations", "forward pass", str(error))]
        )
        return empty[0], empty[1], errors, computed_frame([])

    wanted = {(hook, metric) for hook, metric, _ in units}
    metric_rows: list[tuple[str, int, str, str, str, str, float | None]] = []
    histogram_rows = []
    error_rows: list[tuple[str, int | None, str, str, str, str]] = []
    planes = _planes(probe, model_output, {m for _, m, _ in units})
    for hook in paths:
        output = outputs.get(hook)
        if output is None:
            error_rows.append(
                (
                    run.run_id,
                    ref.step,
                    str(ref.path),
                    "activations",
                    hook,
                    "the module produced no tensor output in the forward pass",
                )
            )
            continue
        stats = activation_stats(output, dead_threshold=options.dead_threshold)
        values = {
            "act_mean": stats.act_mean,
            "act_std": stats.act_std,
            "dead_fraction": stats.dead_fraction,
        }
        for variant, plane in planes.items():
            point = plane.hsic(output.reshape(output.shape[0], -1))
            names = plane.metric_names
            values[names[0]], values[names[1]] = point.hsic_x, point.hsic_y
            if point.reason:
                error_rows.append(
                    (
                        run.run_id,
                        ref.step,
                        str(ref.path),
                        "activations",
                        f"{hook}/{variant}",
                        point.reason,
                    )
                )
        if stats.reason and stats.act_mean is None:
            error_rows.append(
                (run.run_id, ref.step, str(ref.path), "activations", hook, stats.reason)
            )
        for metric, value in values.items():
            if (hook, metric) in wanted:
                params = params_key(options.activation_params(metric))
                metric_rows.append((run.run_id, ref.step, hook, "", metric, params, value))
        if (hook, HISTOGRAM_METRIC) in wanted:
            counts = histogram(output, options.histogram)
            histogram_rows.append(
                (
                    run.run_id,
                    ref.step,
                    hook,
                    "",
                    HISTOGRAM_METRIC,
                    params_key(options.activation_params(HISTOGRAM_METRIC)),
                    list(counts.edges),
                    list(counts.counts),
                    counts.underflow,
                    counts.overflow,
                )
            )
    fingerprint = fingerprint_text(ref)
    return (
        pl.DataFrame(metric_rows, schema=METRIC_SCHEMA, orient="row"),
        pl.DataFrame(histogram_rows, schema=HISTOGRAM_SCHEMA, orient="row"),
        error_frame(error_rows),
        computed_frame(
            [
                (run.run_id, ref.step, hook, metric, params, fingerprint)
                for hook, metric, params in units
            ]
        ),
    )


def _planes(
    probe: Probe, model_output: torch.Tensor | None, metrics: set[str]
) -> dict[str, InformationPlane]:
    """The information planes asked for; X and Y kernels are built once per checkpoint."""
    planes: dict[str, InformationPlane] = {}
    x = probe.x.reshape(probe.x.shape[0], -1).to(torch.float64)
    if metrics & {"hsic_x", "hsic_y"}:
        planes["normalized"] = InformationPlane(x, probe.y, variant="normalized")
    if metrics & {"hsic_x_pyglow", "hsic_y_pyglow"} and model_output is not None:
        out = model_output.reshape(model_output.shape[0], -1).to(torch.float64)
        planes["pyglow"] = InformationPlane(x, out, variant="pyglow")
    return planes
