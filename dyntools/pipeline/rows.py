"""Turning metric records into the tidy frames the store takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl
from polars._typing import PolarsDataType

from dyntools.metrics import MetricValue

METRIC_SCHEMA: dict[str, PolarsDataType] = {
    "run_id": pl.String,
    "step": pl.Int64,
    "hook_point": pl.String,
    "tensor": pl.String,
    "metric": pl.String,
    "params": pl.String,
    "value": pl.Float64,
}
ERROR_SCHEMA: dict[str, PolarsDataType] = {
    "run_id": pl.String,
    "step": pl.Int64,
    "file": pl.String,
    "stage": pl.String,
    "what": pl.String,
    "why": pl.String,
}
HISTOGRAM_SCHEMA: dict[str, PolarsDataType] = {
    "run_id": pl.String,
    "step": pl.Int64,
    "hook_point": pl.String,
    "tensor": pl.String,
    "metric": pl.String,
    "params": pl.String,
    "edges": pl.List(pl.Float64),
    "counts": pl.List(pl.Int64),
    "underflow": pl.Int64,
    "overflow": pl.Int64,
}
COMPUTED_SCHEMA: dict[str, PolarsDataType] = {
    "run_id": pl.String,
    "step": pl.Int64,
    "hook_point": pl.String,
    "metric": pl.String,
    "params": pl.String,
    "fingerprint": pl.String,
}


def metric_frame(
    run_id: str, step: int, values: Iterable[MetricValue], params_of: dict[str, str]
) -> pl.DataFrame:
    """Tidy metric rows; ``params_of`` maps a hook point to its params text ('' if absent)."""
    rows = [
        (run_id, step, v.hook_point, v.tensor, v.metric, params_of.get(v.hook_point, ""), v.value)
        for v in values
    ]
    return pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")


def hook_point_means(metrics: pl.DataFrame, owners: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """Hook-point values (tensor ''): the mean over every per-matrix row of the tensors below it.

    ``owners`` maps a hook point to the tensors it owns. Missing (NULL) values are left out of the
    mean; a hook point whose values are all missing gets NULL.
    """
    if metrics.is_empty() or not owners:
        return metrics.clear()
    base = metrics.with_columns(
        pl.col("tensor").str.replace(r"\[head \d+\]$", "").alias("_owner_tensor")
    )
    frames = []
    for hook, tensors in owners.items():
        own = base.filter(pl.col("_owner_tensor").is_in(list(tensors)))
        if own.is_empty():
            continue
        frames.append(
            own.group_by("run_id", "step", "metric", "params")
            .agg(pl.col("value").fill_nan(None).mean().alias("value"))
            .with_columns(pl.lit(hook).alias("hook_point"), pl.lit("").alias("tensor"))
        )
    if not frames:
        return metrics.clear()
    return pl.concat(frames).select(list(METRIC_SCHEMA))


def error_frame(
    rows: Sequence[tuple[str | None, int | None, str, str, str, str]],
) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=ERROR_SCHEMA, orient="row")


def computed_frame(rows: Sequence[tuple[str, int, str, str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=COMPUTED_SCHEMA, orient="row")
