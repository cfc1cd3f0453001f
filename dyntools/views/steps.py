"""Per-step activation statistics (recorded in the training loop by ``ActivationStats``) as the
frames the activation charts draw: the colorful dimension with one column per training step,
and mean, std and dead fraction per step; and the rising-crash warnings (one sentence per layer
whose activations' std rose, then collapsed while its dead fraction jumped: ``dyntools.crash``,
the rule in docs/metrics.md, "Rising crash").

A run records thousands of steps; a chart of more columns than the page has pixels shows
nothing more. Consecutive steps are pooled into at most ``max_columns`` windows: histogram
counts summed (the same values, fewer columns), mean, std and dead fraction averaged. A window
is labelled by its first step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from dyntools.crash import Crash, CrashThresholds, find_crashes, folder_crashes
from dyntools.views.activations import ACTIVATION_STATS, HEATMAP_SCHEMA, STATS_SCHEMA, bin_rows

MAX_COLUMNS = 300


def _windows(stats: pl.DataFrame, max_columns: int) -> pl.DataFrame:
    """``stats`` with a ``window`` column: the first step of each pool of consecutive steps."""
    steps = stats["step"].unique().sort()
    size = max(1, math.ceil(len(steps) / max_columns))
    starts = {step: steps[(i // size) * size] for i, step in enumerate(steps.to_list())}
    return stats.with_columns(pl.col("step").replace_strict(starts).alias("window"))


def step_heatmap_frame(
    stats: Mapping[str, pl.DataFrame], max_columns: int = MAX_COLUMNS
) -> pl.DataFrame:
    """The colorful dimension per step, in ``heatmap_frame``'s columns (``hook_point``: the
    recorded module; ``epoch`` null), from each run's ``read_step_stats`` frame."""
    records: list[tuple[object, ...]] = []
    for run_id, frame in stats.items():
        if frame.is_empty():
            continue
        windowed = _windows(frame, max_columns).with_columns(
            pl.col("counts").list.len().alias("bins")
        )
        keys = ["module", "window", "low", "high", "bins"]
        # Counts summed bin by bin over each window (a session with other bins stays apart).
        counts = (
            windowed.select(*keys, pl.col("counts"), pl.int_ranges(pl.col("bins")).alias("i"))
            .explode("counts", "i")
            .group_by(*keys, "i")
            .agg(pl.col("counts").sum())
            .sort("i")
            .group_by(keys, maintain_order=True)
            .agg(pl.col("counts"))
        )
        outside = windowed.group_by(keys).agg(pl.col("underflow").sum(), pl.col("overflow").sum())
        pooled = counts.join(outside, on=keys).sort("module", "window")
        for module, window, low, high, n, bin_counts, under, over in pooled.iter_rows():
            edges = [low + i * (high - low) / n for i in range(n + 1)]
            records += [
                (run_id, module, window, None, *row)
                for row in bin_rows(edges, bin_counts, under, over)
            ]
    return pl.DataFrame(records, schema=HEATMAP_SCHEMA, orient="row").sort(
        "run_id", "hook_point", "step", "bin_low", nulls_last=False
    )


def step_stats_curves(
    stats: Mapping[str, pl.DataFrame], max_columns: int = MAX_COLUMNS
) -> pl.DataFrame:
    """Mean, std and dead fraction per step window, in ``activation_stats_frame``'s columns."""
    frames = [
        _windows(frame, max_columns)
        .group_by("module", "window")
        .agg(
            pl.col("mean").mean().alias("act_mean"),
            pl.col("std").mean().alias("act_std"),
            pl.col("dead_fraction").mean(),
        )
        .select(
            pl.lit(run_id).alias("run_id"),
            pl.col("module").alias("hook_point"),
            pl.col("window").alias("step"),
            pl.lit(None, dtype=pl.Float64).alias("epoch"),
            *ACTIVATION_STATS,
        )
        for run_id, frame in stats.items()
        if not frame.is_empty()
    ]
    if not frames:
        return pl.DataFrame(schema=STATS_SCHEMA)
    return pl.concat(frames).sort("run_id", "hook_point", "step")


ADVICE = "fast.ai: stop and restart training, e.g. with a lower learning rate or a warm-up"


def crash_warning(crash: Crash) -> str:
    """One warning, plain text (escape it before rendering it as Markdown: module paths may
    hold ``_`` or ``*``)."""
    return f"Rising crash in {crash.describe()}. {ADVICE}."


def crash_warnings(folder: str | Path, thresholds: CrashThresholds | None = None) -> list[str]:
    """A warning per crash of every run below ``folder`` with step statistics, by run id, then
    module, then step; empty when none crashed (or none recorded step statistics). Reads every
    run's statistics: a page that already holds them (``ui.load_step_stats``) can call
    ``run_crash_warnings`` per run instead."""
    return [
        crash_warning(crash) for run in folder_crashes(folder, thresholds) for crash in run.crashes
    ]


def run_crash_warnings(
    run_id: str, stats: pl.DataFrame, thresholds: CrashThresholds | None = None
) -> list[str]:
    """The warnings of one run, from its ``read_step_stats`` frame."""
    return [crash_warning(crash) for crash in find_crashes(stats, run_id, thresholds)]
