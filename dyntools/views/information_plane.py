"""Frames behind the Information plane page: HSIC(H, X) and HSIC(H, Y) per layer and checkpoint,
with what the probe's inputs and labels were in the kernels (the values' stored parameters)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import polars as pl

from dyntools.metrics.hsic_inputs import LOGITS, SOFTMAX, Coding
from dyntools.metrics.registry import variant_metrics
from dyntools.views.metrics import curve_frame

# How a stored parameter reads on the page: (parameter, value) -> words.
_WORDS = {
    ("inputs", Coding.ONE_HOT): "X = the probe inputs as one-hot codes",
    ("inputs", Coding.VALUES): "X = the probe inputs as values",
    ("labels", Coding.ONE_HOT): "Y = the labels as one-hot codes",
    ("labels", Coding.VALUES): "Y = the targets as values",
    ("output", SOFTMAX): "Y = the softmax of the model's output",
    ("output", LOGITS): "Y = the model's logits",
}
INFORMATION_COLUMNS = {
    "run_id": pl.String,
    "hook_point": pl.String,
    "step": pl.Int64,
    "epoch": pl.Float64,
    "hsic_x": pl.Float64,
    "hsic_y": pl.Float64,
    "x_params": pl.String,
    "y_params": pl.String,
}


def describe_params(params: str) -> str:
    """A stored HSIC parameter set in words (``{"inputs":"one-hot"}`` -> "X = ... one-hot ...")."""
    given = json.loads(params) if params else {}
    words = [_WORDS.get((name, str(value)), f"{name} = {value}") for name, value in given.items()]
    return "; ".join(words) or "no parameters stored"


def parameter_choices(metrics: pl.DataFrame, variant: str) -> dict[str, list[str]]:
    """The HSIC metrics of ``variant`` some run holds with several parameter sets (computed with
    other codings), and those sets: what the page lets the user choose between."""
    curves = curve_frame(metrics)
    choices: dict[str, list[str]] = {}
    for name in variant_metrics(variant):
        sets = curves.filter(pl.col("metric") == name).select("run_id", "params").unique()
        several = sets.group_by("run_id").len().filter(pl.col("len") > 1)["run_id"]
        if several.len():
            options = sets.filter(pl.col("run_id").is_in(several.implode()))["params"]
            choices[name] = sorted(options.unique().to_list())
    return choices


def information_frame(
    metrics: pl.DataFrame, variant: str, prefer: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """run_id, hook_point, step, epoch, hsic_x, hsic_y (and the parameters each was computed
    with) for one HSIC variant, in step order. A run holding a metric with several parameter
    sets gives the one ``prefer`` names for that metric, else the one with most values."""
    x_name, y_name = variant_metrics(variant)
    curves = curve_frame(metrics)
    sides = [_side(curves, name, (prefer or {}).get(name)) for name in (x_name, y_name)]
    if any(side.is_empty() for side in sides):
        return pl.DataFrame(schema=INFORMATION_COLUMNS)
    x_side, y_side = sides
    return (
        x_side.rename({"value": "hsic_x", "params": "x_params"})
        .join(
            y_side.drop("epoch").rename({"value": "hsic_y", "params": "y_params"}),
            on=["run_id", "hook_point", "step"],
        )
        .select(list(INFORMATION_COLUMNS))
        .drop_nulls(["hsic_x", "hsic_y"])
        .sort("run_id", "hook_point", "step")
    )


def _side(curves: pl.DataFrame, name: str, preferred: str | None) -> pl.DataFrame:
    """One HSIC metric's rows, one parameter set per run."""
    rows = curves.filter(pl.col("metric") == name)
    is_preferred = pl.col("params").is_in([] if preferred is None else [preferred])
    picked = (
        rows.group_by("run_id", "params")
        .len()
        .sort(
            is_preferred,
            "len",
            "params",
            descending=[True, True, False],
        )
        .unique("run_id", keep="first", maintain_order=True)
        .select("run_id", "params")
    )
    return rows.join(picked, on=["run_id", "params"]).select(
        "run_id", "hook_point", "step", "epoch", "value", "params"
    )


def kernel_notes(frame: pl.DataFrame) -> list[str]:
    """What X and Y were in the kernels of ``frame`` (``information_frame``), naming the runs
    where that differs."""
    notes = []
    for column in ("x_params", "y_params"):
        runs_of = frame.group_by(column).agg(pl.col("run_id").unique().sort()).sort(column)
        if runs_of.height == 1:
            notes.append(describe_params(runs_of[column][0]) + ".")
            continue
        notes.append(
            "; ".join(
                f"{describe_params(params)} ({', '.join(runs)})"
                for params, runs in runs_of.iter_rows()
            )
            + "."
        )
    return notes
