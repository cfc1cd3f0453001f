"""Two fits side by side: what each was, and how their states correspond.

The correspondence counts, over the checkpoints both fits decoded (same run, same step), how
often state i of fit A meets state j of fit B; the adjusted Rand index sums it up (1: the same
partition of the checkpoints, up to the states' names; about 0: no more agreement than chance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from dyntools.hmm import FitResult
from dyntools.hmm.caveats import plural
from dyntools.hmm.report import selection_text
from dyntools.views.latent_states.frames import state_points

CORRESPONDENCE_SCHEMA = {
    "state_a": pl.String,
    "state_b": pl.String,
    "checkpoints": pl.Int64,
    "share_of_a": pl.Float64,
}


def describe_config(config: Mapping[str, Any]) -> str:
    """A fit's configuration in a few words (``Store.list_fits``' config_json, parsed)."""
    n_states = config.get("n_states")
    states = (
        f"{n_states} states"
        if n_states
        else f"n ≤ {config.get('max_states')} by {config.get('criterion', 'bic')}"
    )
    chosen = config.get("features") or ()
    features = (
        f"paper features ({selection_text(config.get('network_selection'))})"
        if config.get("paper_features")
        else plural(len(chosen), "feature")
        if chosen
        else "every stored feature"
    )
    scalars = config.get("scalar_features") or ()
    runs = config.get("runs")
    parts = [
        states,
        f"{config.get('covariance_type')} covariance",
        features + (f" + {plural(len(scalars), 'scalar')}" if scalars else ""),
        f"{config.get('normalize')} normalization",
        f"{config.get('axis', 'auto')} axis",
        "every run" if runs is None else plural(len(runs), "run"),
        f"seed {config.get('seed')}",
    ]
    return ", ".join(parts)


def fit_choices(fits: pl.DataFrame) -> dict[str, str]:
    """config_hash -> what the fit was (``Store.list_fits``, newest first)."""
    return {
        config_hash: describe_config(json.loads(config_json))
        for config_hash, config_json in fits.select("config_hash", "config_json").iter_rows()
    }


def correspondence(a: FitResult, b: FitResult) -> pl.DataFrame:
    """How often each state of ``a`` meets each state of ``b`` on the checkpoints both decoded:
    state_a, state_b, checkpoints, share_of_a (of state_a's checkpoints)."""
    joined = state_points(a).join(state_points(b), on=["run_id", "step"], suffix="_b")
    if joined.is_empty():
        return pl.DataFrame(schema=CORRESPONDENCE_SCHEMA)
    counts = joined.group_by(
        pl.col("state").alias("state_a"), pl.col("state_b").alias("state_b")
    ).agg(pl.len().cast(pl.Int64).alias("checkpoints"))
    return (
        counts.with_columns(
            share_of_a=pl.col("checkpoints") / pl.col("checkpoints").sum().over("state_a")
        )
        .select(list(CORRESPONDENCE_SCHEMA))
        .sort("state_a", "state_b")
    )


def matched_states(table: pl.DataFrame) -> pl.DataFrame:
    """For each state of fit A, the state of fit B that holds most of its checkpoints."""
    return (
        table.sort("checkpoints", descending=True)
        .group_by("state_a", maintain_order=True)
        .first()
        .select("state_a", "state_b", "share_of_a")
        .sort("state_a")
    )


def adjusted_rand_index(table: pl.DataFrame) -> float:
    """The adjusted Rand index of the two fits' partitions of their shared checkpoints, from
    their correspondence table (Hubert and Arabie's formula); NaN with fewer than two
    checkpoints."""
    counts = table["checkpoints"].to_numpy().astype(np.float64)
    total = counts.sum()
    if total < 2:
        return float("nan")

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    rows = table.group_by("state_a").agg(pl.col("checkpoints").sum())["checkpoints"].to_numpy()
    cols = table.group_by("state_b").agg(pl.col("checkpoints").sum())["checkpoints"].to_numpy()
    index = pairs(counts)
    row_pairs, col_pairs = pairs(rows.astype(np.float64)), pairs(cols.astype(np.float64))
    expected = row_pairs * col_pairs / (total * (total - 1) / 2)
    best = (row_pairs + col_pairs) / 2
    if best == expected:  # both partitions trivial (one state each): identical
        return 1.0
    return float((index - expected) / (best - expected))
