"""Frames behind the Information plane page: HSIC(H, X) and HSIC(H, Y) per layer and checkpoint."""

from __future__ import annotations

import polars as pl

from dyntools.metrics.registry import variant_metrics
from dyntools.views.metrics import curve_frame


def information_frame(metrics: pl.DataFrame, variant: str) -> pl.DataFrame:
    """run_id, hook_point, step, epoch, hsic_x, hsic_y for one HSIC variant, in step order."""
    x_name, y_name = variant_metrics(variant)
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
        .sort("run_id", "hook_point", "step")
    )
