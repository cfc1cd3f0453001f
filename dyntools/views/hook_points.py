"""The Hook points page's tables: the layer tree of a run and what the store already holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

from dyntools.hookpoints import HookPointTree
from dyntools.metrics.kinds import HookKind
from dyntools.metrics.records import EXPECTED, ReasonCode
from dyntools.metrics.registry import REGISTRY
from dyntools.roles import classify
from dyntools.selection import NetworkSelection

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


def roles_table(
    tree: HookPointTree,
    selection: NetworkSelection,
    module_types: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Every tensor with its role (from the rebuilt model's ``module_types`` where a compute
    recorded them, else from names and shapes, as the compute classifies it) and whether the
    network values (the paper's features) under ``selection`` take it."""
    tensors = list(tree.tensors.values())
    roles = classify(tensors, module_types)
    return pl.DataFrame(
        [
            {
                "tensor": t.name,
                "shape": str(list(t.shape)),
                "layer": roles[t.name].layer.value,
                "part": roles[t.name].part.value,
                "paper_features": selection.includes(t.name, roles[t.name]),
            }
            for t in tensors
        ],
        schema={
            "tensor": pl.String,
            "shape": pl.String,
            "layer": pl.String,
            "part": pl.String,
            "paper_features": pl.Boolean,
        },
    )


def metric_catalogue() -> pl.DataFrame:
    """Every metric the compute knows: name, kind of hook point, kind of metric, parameters
    (with their defaults) and definition, in registry order."""
    return pl.DataFrame(
        [
            {
                "metric": entry.name,
                "hook_kind": entry.hook_kind.value,
                "kind": entry.metric_kind.value,
                "parameters": ", ".join(f"{p.name}={p.default}" for p in entry.params),
                "definition": entry.description,
            }
            for entry in REGISTRY.values()
        ],
        schema={
            "metric": pl.String,
            "hook_kind": pl.String,
            "kind": pl.String,
            "parameters": pl.String,
            "definition": pl.String,
        },
    )


def metric_names_of(kind: HookKind) -> list[str]:
    """The registry's metrics of weight or of activation hook points, in registry order."""
    return [entry.name for entry in REGISTRY.values() if entry.hook_kind is kind]


def computed_table(summary: pl.DataFrame) -> pl.DataFrame:
    """The store's summary per (hook point, metric): runs, checkpoints, missing values, and
    checkpoints gone from disk since (their values are kept and left out of the views)."""
    if summary.is_empty():
        return pl.DataFrame(
            schema={
                "kind": pl.String,
                "hook_point": pl.String,
                "metric": pl.String,
                "runs": pl.UInt32,
                "checkpoints": pl.Int64,
                "values": pl.Int64,
                "null_values": pl.Int64,
                "gone": pl.Int64,
            }
        )
    return (
        summary.group_by("kind", "hook_point", "metric")
        .agg(
            pl.col("run_id").n_unique().alias("runs"),
            pl.col("checkpoints").sum().cast(pl.Int64),
            pl.col("values").sum().cast(pl.Int64),
            pl.col("null_values").sum().cast(pl.Int64),
            pl.col("gone").sum().cast(pl.Int64),
        )
        .sort("kind", "hook_point", "metric")
    )


# Gaps that are values by definition, not failures: an undefined value (0/0, the HSIC of a
# layer whose output is the same for every probe sample), an empty tensor, a difference below
# the stored dtype's resolution, and the gaps every run has (``EXPECTED``). Shown as notes, grouped, not counted as problems.
NOTE_CODES: Final = EXPECTED | {ReasonCode.UNDEFINED, ReasonCode.EMPTY, ReasonCode.ROUNDING}


def recorded_problems(errors: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The errors table split into problems (each row) and notes (grouped by code and reason:
    how many values, in how many runs)."""
    is_note = pl.col("code").is_in([code.value for code in NOTE_CODES])
    problems = errors.filter(~is_note)
    notes = (
        errors.filter(is_note)
        .group_by("code", "why")
        .agg(pl.len().alias("values"), pl.col("run_id").n_unique().alias("runs"))
        .sort("values", descending=True)
    )
    return problems, notes
