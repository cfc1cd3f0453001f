"""Frames behind the Metrics, Activations and Information plane pages, from the store's tidy
frames (``Store.read_metrics`` / ``read_histograms``)."""

from __future__ import annotations

import math

import polars as pl

from dyntools.metrics.registry import VARIANT_METRICS, VARIANTS

CURVE_COLUMNS = ("run_id", "hook_point", "metric", "params", "step", "epoch", "value")
ACTIVATION_STATS = ("act_mean", "act_std", "dead_fraction")
HISTOGRAM_METRIC = "histogram"


def _epoch(frame: pl.DataFrame) -> pl.Expr:
    # Layouts without epochs (step-only checkpoints) are drawn against the step.
    return pl.coalesce(pl.col("epoch").cast(pl.Float64), pl.col("step").cast(pl.Float64))


def curve_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """Hook-point-level values (not per tensor) as run_id, hook_point, metric, params, step,
    epoch, value, sorted for drawing."""
    if metrics.is_empty():
        return pl.DataFrame(
            schema={
                "run_id": pl.String,
                "hook_point": pl.String,
                "metric": pl.String,
                "params": pl.String,
                "step": pl.Int64,
                "epoch": pl.Float64,
                "value": pl.Float64,
            }
        )
    return (
        metrics.filter(pl.col("tensor") == "")
        .with_columns(_epoch(metrics).alias("epoch"))
        .select(CURVE_COLUMNS)
        .sort("run_id", "hook_point", "metric", "params", "step")
    )


def epoch_range(frame: pl.DataFrame, low: float | None, high: float | None) -> pl.DataFrame:
    """Rows whose epoch lies in [low, high] (an open end when None)."""
    if low is not None:
        frame = frame.filter(pl.col("epoch") >= low)
    if high is not None:
        frame = frame.filter(pl.col("epoch") <= high)
    return frame


def brushed_range(selection: object, field: str = "epoch") -> tuple[float, float] | None:
    """The [low, high] of an Altair interval selection event (``{"epoch": [a, b]}``), if any."""
    if not isinstance(selection, dict):
        return None
    values = selection.get(field)
    if not isinstance(values, list | tuple) or len(values) != 2:
        return None
    low, high = (float(v) for v in values)
    return (min(low, high), max(low, high))


def range_summary(curves: pl.DataFrame) -> pl.DataFrame:
    """Per run, hook point and metric: first, last, min, max and mean value of the rows given."""
    return (
        curves.sort("step")
        .group_by("run_id", "hook_point", "metric", "params", maintain_order=True)
        .agg(
            pl.col("epoch").min().alias("from_epoch"),
            pl.col("epoch").max().alias("to_epoch"),
            pl.col("value").first().alias("first"),
            pl.col("value").last().alias("last"),
            pl.col("value").min().alias("min"),
            pl.col("value").max().alias("max"),
            pl.col("value").mean().alias("mean"),
        )
        .sort("run_id", "hook_point", "metric")
    )


def activation_stats_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """run_id, hook_point, epoch, act_mean, act_std, dead_fraction (one row per checkpoint),
    with the dead-unit threshold of each value kept as ``threshold`` text."""
    curves = curve_frame(metrics).filter(pl.col("metric").is_in(ACTIVATION_STATS))
    if curves.is_empty():
        return pl.DataFrame(
            schema={
                "run_id": pl.String,
                "hook_point": pl.String,
                "step": pl.Int64,
                "epoch": pl.Float64,
                **{m: pl.Float64 for m in ACTIVATION_STATS},
            }
        )
    wide = curves.drop("params").pivot(
        on="metric", index=["run_id", "hook_point", "step", "epoch"], values="value"
    )
    missing = [m for m in ACTIVATION_STATS if m not in wide.columns]
    wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(m) for m in missing)
    return wide.sort("run_id", "hook_point", "step")


def heatmap_frame(histograms: pl.DataFrame) -> pl.DataFrame:
    """The colorful dimension: run_id, hook_point, step, epoch, bin_low, bin_high, bin, count,
    log1p_count; one row per bin and checkpoint. Values beyond the last edge are the overflow
    bin (``bin_high`` null) and values below the first the underflow bin (``bin_low`` null,
    only where there are any), so nothing is silently dropped."""
    schema = {
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
    rows = histograms.filter(
        (pl.col("metric") == HISTOGRAM_METRIC) & (pl.col("tensor") == "")
    ).with_columns(_epoch(histograms).alias("epoch"))
    records: list[tuple[object, ...]] = []
    for run, hook, step, epoch, edges, counts, under, over in rows.select(
        "run_id", "hook_point", "step", "epoch", "edges", "counts", "underflow", "overflow"
    ).iter_rows():
        bins = [
            (low, high, f"[{low:.3g}, {high:.3g})", count)
            for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True)
        ]
        bins.append((edges[-1], None, f">= {edges[-1]:.3g}", over))
        if under:
            bins.insert(0, (None, edges[0], f"< {edges[0]:.3g}", under))
        records += [
            (run, hook, step, epoch, low, high, label, count, math.log1p(count))
            for low, high, label, count in bins
        ]
    return pl.DataFrame(records, schema=schema, orient="row").sort(
        "run_id", "hook_point", "step", "bin_low", nulls_last=False
    )


def information_frame(metrics: pl.DataFrame, variant: str) -> pl.DataFrame:
    """run_id, hook_point, step, epoch, hsic_x, hsic_y for one HSIC variant, ordered by epoch."""
    if variant not in VARIANT_METRICS:
        raise ValueError(f"unknown HSIC variant {variant!r}; choose one of {list(VARIANTS)}")
    x_name, y_name = VARIANT_METRICS[variant]
    curves = curve_frame(metrics).filter(pl.col("metric").is_in([x_name, y_name]))
    schema = {
        "run_id": pl.String,
        "hook_point": pl.String,
        "step": pl.Int64,
        "epoch": pl.Float64,
        "hsic_x": pl.Float64,
        "hsic_y": pl.Float64,
    }
    if curves.is_empty():
        return pl.DataFrame(schema=schema)
    wide = curves.drop("params").pivot(
        on="metric", index=["run_id", "hook_point", "step", "epoch"], values="value"
    )
    for name in (x_name, y_name):
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return (
        wide.rename({x_name: "hsic_x", y_name: "hsic_y"})
        .select(list(schema))
        .drop_nulls(["hsic_x", "hsic_y"])
        .sort("run_id", "hook_point", "epoch")
    )


def nan_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    """NaN as null, so charts leave a gap instead of failing on a non-number."""
    return frame.with_columns(
        pl.col(name).fill_nan(None)
        for name, dtype in frame.schema.items()
        if dtype in (pl.Float64, pl.Float32)
    )
