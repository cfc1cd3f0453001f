"""Frames behind the Activations page: activation statistics per checkpoint and the colorful
dimension, from the store's tidy frames (``Store.read_metrics`` / ``read_histograms``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from dyntools.metrics.kinds import HistogramMetric
from dyntools.metrics.registry import REGISTRY
from dyntools.views.metrics import curve_frame

ACTIVATION_STATS = ("act_mean", "act_std", "dead_fraction")
# The frame the activation-statistics chart draws, per checkpoint or per training step.
STATS_SCHEMA: Final = {
    "run_id": pl.String,
    "hook_point": pl.String,
    "step": pl.Int64,
    "epoch": pl.Float64,
    **{m: pl.Float64 for m in ACTIVATION_STATS},
}
# What a folder without activation values needs, as the pages say it.
PROBE_HINT = (
    "(runs need a probe batch: a probe.safetensors, or `dyntools probe FOLDER --from FILE` for "
    "runs that carry none, such as Hugging Face runs)."
)


def histogram_metrics() -> list[str]:
    """The registry's histogram metrics (the colorful dimension)."""
    return [name for name, entry in REGISTRY.items() if isinstance(entry, HistogramMetric)]


@dataclass(frozen=True)
class ComputedBins:
    """What a compute of other histogram bins did (the page shows it after the rerun that
    reads them): their parameters, a summary and the failures."""

    params: str
    message: str
    failures: tuple[str, ...]


def describe_bins(params: str) -> str:
    """``40 bins of |a| over [0, 10)`` for a stored histogram's parameters."""
    spec = json.loads(params)
    of = "|a|" if spec.get("on", "abs") == "abs" else "a"
    return f"{spec['bins']} bins of {of} over [{spec['low']:g}, {spec['high']:g})"


def histogram_params(histograms: pl.DataFrame) -> dict[str, str]:
    """The parameters the stored histograms were computed with, each with its description,
    the most common first (``read_histograms`` rows)."""
    counts = histograms.group_by("params").len().sort(["len", "params"], descending=[True, False])
    return {params: describe_bins(params) for params in counts["params"].to_list()}


def activation_stats_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """run_id, hook_point, epoch, act_mean, act_std, dead_fraction (one row per checkpoint),
    with the dead-unit threshold of each value kept as ``threshold`` text."""
    curves = curve_frame(metrics).filter(pl.col("metric").is_in(ACTIVATION_STATS))
    if curves.is_empty():
        return pl.DataFrame(schema=STATS_SCHEMA)
    wide = curves.drop("params").pivot(
        on="metric", index=["run_id", "hook_point", "step", "epoch"], values="value"
    )
    missing = [m for m in ACTIVATION_STATS if m not in wide.columns]
    wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(m) for m in missing)
    return wide.sort("run_id", "hook_point", "step")


HEATMAP_SCHEMA: Final = {
    "run_id": pl.String,
    "hook_point": pl.String,
    "step": pl.Int64,
    "epoch": pl.Float64,
    "bin_low": pl.Float64,
    "bin_high": pl.Float64,
    "bin": pl.String,
    "count": pl.Int64,
    "log1p_count": pl.Float64,
}


def bin_rows(
    edges: Sequence[float], counts: Sequence[int], underflow: int, overflow: int
) -> list[tuple[float | None, float | None, str, int, float]]:
    """A histogram's heatmap rows: bin_low, bin_high, bin, count, log1p_count; the overflow
    bin last (``bin_high`` None), the underflow bin first where there is any."""
    bins: list[tuple[float | None, float | None, str, int]] = [
        (low, high, f"[{low:.3g}, {high:.3g})", int(count))
        for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True)
    ]
    bins.append((edges[-1], None, f">= {edges[-1]:.3g}", int(overflow)))
    if underflow:
        bins.insert(0, (None, edges[0], f"< {edges[0]:.3g}", int(underflow)))
    return [(low, high, label, count, math.log1p(count)) for low, high, label, count in bins]


def heatmap_frame(histograms: pl.DataFrame) -> pl.DataFrame:
    """The colorful dimension: run_id, hook_point, step, epoch, bin_low, bin_high, bin, count,
    log1p_count; one row per bin and checkpoint. Values beyond the last edge are the overflow
    bin (``bin_high`` null) and values below the first the underflow bin (``bin_low`` null,
    only where there are any), so nothing is silently dropped."""
    rows = histograms.filter(pl.col("metric").is_in(histogram_metrics())).with_columns(
        pl.col("epoch").cast(pl.Float64)
    )
    records: list[tuple[object, ...]] = []
    for run, hook, step, epoch, edges, counts, under, over in rows.select(
        "run_id", "hook_point", "step", "epoch", "edges", "counts", "underflow", "overflow"
    ).iter_rows():
        records += [(run, hook, step, epoch, *row) for row in bin_rows(edges, counts, under, over)]
    return pl.DataFrame(records, schema=HEATMAP_SCHEMA, orient="row").sort(
        "run_id", "hook_point", "step", "bin_low", nulls_last=False
    )
