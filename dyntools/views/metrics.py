"""Frames behind the Metrics page: hook-point curves from the store's tidy metric frame
(``Store.read_metrics``), ranges of time and their summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from dyntools.metrics.kinds import TemporalMetric, compared_with
from dyntools.metrics.records import ReasonCode, Scope
from dyntools.metrics.registry import REGISTRY

CURVE_COLUMNS = ("run_id", "kind", "hook_point", "metric", "params", "step", "epoch", "value")
CURVE_SCHEMA = {
    "run_id": pl.String,
    "kind": pl.String,
    "hook_point": pl.String,
    "series": pl.String,
    "metric": pl.String,
    "params": pl.String,
    "step": pl.Int64,
    "epoch": pl.Float64,
    "value": pl.Float64,
}


def curve_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """Hook-point values (not per tensor, not the network's) as run_id, kind, hook_point,
    series (the hook point), metric, params, step, epoch (null where the run states none),
    value, sorted for drawing."""
    if metrics.is_empty():
        return pl.DataFrame(schema=CURVE_SCHEMA)
    return _curves(
        metrics.filter(pl.col("scope") == Scope.HOOK_POINT).with_columns(
            series=pl.col("hook_point")
        )
    )


def tensor_curve_frame(metrics: pl.DataFrame) -> pl.DataFrame:
    """The values of each tensor (each head of a split attention matrix, each part of a fused
    Q/K/V tensor) as the columns of ``curve_frame``, ``series`` naming the tensor:
    ``blocks.0.attn.W_Q head 2``, ``attn.c_attn.weight q``."""
    if metrics.is_empty():
        return pl.DataFrame(schema=CURVE_SCHEMA)
    tensors = metrics.filter(pl.col("scope") == Scope.TENSOR)
    series = pl.concat_str(
        pl.col("tensor"),
        pl.when(pl.col("head").is_not_null()).then(pl.format(" head {}", pl.col("head"))),
        pl.when(pl.col("component") != "").then(pl.format(" {}", pl.col("component"))),
        ignore_nulls=True,
    )
    return _curves(tensors.with_columns(series=series))


def _curves(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.with_columns(pl.col("epoch").cast(pl.Float64))
        .select(list(CURVE_SCHEMA))
        .sort("run_id", "kind", "series", "metric", "params", "step")
    )


def smoothed(curves: pl.DataFrame, weight: float) -> pl.DataFrame:
    """``curves`` with ``smoothed``: TensorBoard's smoothing, an exponential moving average
    over each curve's earlier points, debiased (the first point is itself), skipping missing
    values. ``weight`` in [0, 1): 0 leaves the values as they are."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    curve = ["run_id", "series", "metric", "params"]
    # Debiased EMA with weight w == weights w^i normalized over the points so far (adjust).
    average = (
        pl.col("value")
        .fill_nan(None)
        .ewm_mean(alpha=1.0 - weight, adjust=True, ignore_nulls=True)
        .over(curve, order_by="step")
    )
    return curves.with_columns(
        smoothed=pl.when(pl.col("value").is_finite()).then(average).otherwise(pl.col("value"))
    )


def with_states(curves: pl.DataFrame, points: pl.DataFrame) -> pl.DataFrame:
    """The curves of the runs a fit decoded, each point with the state its run was in at that
    checkpoint (``state_points``: run_id, step, state); other points are left out."""
    return curves.join(points.select("run_id", "step", "state"), on=["run_id", "step"])


def panel_order(curves: pl.DataFrame, layers: Sequence[str]) -> list[str]:
    """The series of ``curves`` in network order (their hook points' order in ``layers``),
    then by name."""
    rank = {hook: position for position, hook in enumerate(layers)}
    pairs = curves.select("hook_point", "series").unique().iter_rows()
    ordered = sorted(pairs, key=lambda pair: (rank.get(pair[0], len(rank)), pair[1]))
    return [series for _, series in ordered]


def time_range(frame: pl.DataFrame, low: float | None, high: float | None) -> pl.DataFrame:
    """Rows whose time (``views.time.with_time``) lies in [low, high] (open ends when None)."""
    if low is not None:
        frame = frame.filter(pl.col("time") >= low)
    if high is not None:
        frame = frame.filter(pl.col("time") <= high)
    return frame


def brushed_range(selection: object, field: str = "time") -> tuple[float, float] | None:
    """The [low, high] of an Altair interval selection event (``{"time": [a, b]}``), if any."""
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
        .group_by("run_id", "series", "metric", "params", maintain_order=True)
        .agg(
            pl.col("time").min().alias("from"),
            pl.col("time").max().alias("to"),
            pl.col("value").first().alias("first"),
            pl.col("value").last().alias("last"),
            pl.col("value").min().alias("min"),
            pl.col("value").max().alias("max"),
            pl.col("value").mean().alias("mean"),
        )
        .sort("run_id", "series", "metric")
    )


def comparison_notes(metrics: Iterable[str], first_steps: Mapping[str, int]) -> list[str]:
    """What each temporal metric among ``metrics`` compares a checkpoint with, one line per
    metric naming the runs where that differs (``first_steps``: each run's first saved
    checkpoint)."""
    notes = []
    for name in metrics:
        entry = REGISTRY.get(name)
        if not isinstance(entry, TemporalMetric):
            continue
        runs_of: dict[str, list[str]] = {}
        for run, step in sorted(first_steps.items()):
            runs_of.setdefault(compared_with(entry.against, step), []).append(run)
        if len(runs_of) == 1:
            notes.append(f"{name} compares each checkpoint with {next(iter(runs_of))}.")
            continue
        parts = "; ".join(f"{what} in {', '.join(runs)}" for what, runs in runs_of.items())
        notes.append(f"{name} compares each checkpoint with {parts}.")
    return notes


def rounding_notes(errors: pl.DataFrame, runs: Iterable[str], metrics: Iterable[str]) -> list[str]:
    """How many values of each shown metric rounding dominates (``Store.read_errors`` rows
    with code ``rounding``: a difference below the stored dtype's resolution)."""
    rounding = errors.filter(
        (pl.col("code") == ReasonCode.ROUNDING) & pl.col("run_id").is_in(list(runs))
    )
    notes = []
    for name in metrics:
        count = rounding.filter(pl.col("what").str.ends_with(f" {name}")).height
        if count:
            notes.append(
                f"{name}: {count} values of these runs are below the resolution of the dtype "
                "their checkpoints were saved in, so rounding dominates them (the Hook points "
                "page lists them)."
            )
    return notes
