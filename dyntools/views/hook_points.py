"""The Hook points page's tables: the layer tree of a run and what the store already holds."""

from __future__ import annotations

import polars as pl

from dyntools.hookpoints import HookPointTree
from dyntools.metrics import REGISTRY
from dyntools.metrics.registry import (
    ACTIVATION_FAMILIES,
    HISTOGRAM_METRIC,
    WEIGHT_FAMILIES,
    metric_names,
)

TREE_SCHEMA = {
    "hook_point": pl.String,
    "depth": pl.Int64,
    "natural": pl.Boolean,
    "parameters": pl.Int64,
    "tensors": pl.String,
}


def tree_table(tree: HookPointTree) -> pl.DataFrame:
    """One row per hook point, parents before children, indented by depth for display.

    ``tensors`` lists the tensors it owns directly with their shapes (``weight [64, 43]``).
    """
    rows = [
        {
            "hook_point": node.path,
            "depth": node.depth,
            "natural": node.natural,
            "parameters": node.parameters,
            "tensors": ", ".join(
                f"{t.name.rsplit('.', 1)[-1]} {list(t.shape)}"
                + ("" if t.is_float else f" ({t.dtype}, not a metric input)")
                for t in node.direct
            ),
        }
        for node in tree.nodes.values()
    ]
    return pl.DataFrame(rows, schema=TREE_SCHEMA)


def metric_catalogue() -> pl.DataFrame:
    """Every metric the compute knows: name, family, kind (weights/activations), definition."""
    weight = set(metric_names(*WEIGHT_FAMILIES))
    rows = [
        {
            "metric": spec.name,
            "family": spec.family,
            "kind": "weights" if spec.name in weight else "activations",
            "definition": spec.definition,
        }
        for spec in REGISTRY.values()
    ]
    rows.append(
        {
            "metric": HISTOGRAM_METRIC,
            "family": "activation",
            "kind": "activations",
            "definition": "log1p counts of |a| in fixed bins (the colorful dimension)",
        }
    )
    return pl.DataFrame(rows)


def activation_metric_names() -> tuple[str, ...]:
    return (*metric_names(*ACTIVATION_FAMILIES), HISTOGRAM_METRIC)


def computed_table(summary: pl.DataFrame) -> pl.DataFrame:
    """The store's summary per (hook point, metric): runs, checkpoints and missing values."""
    if summary.is_empty():
        return pl.DataFrame(
            schema={
                "hook_point": pl.String,
                "metric": pl.String,
                "runs": pl.UInt32,
                "checkpoints": pl.Int64,
                "values": pl.Int64,
                "null_values": pl.Int64,
            }
        )
    return (
        summary.group_by("hook_point", "metric")
        .agg(
            pl.col("run_id").n_unique().alias("runs"),
            pl.col("checkpoints").sum().cast(pl.Int64),
            pl.col("values").sum().cast(pl.Int64),
            pl.col("null_values").sum().cast(pl.Int64),
        )
        .sort("hook_point", "metric")
    )
