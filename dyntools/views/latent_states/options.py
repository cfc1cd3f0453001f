"""What the Latent states page offers to fit on: features, training scalars and held-out runs.

Every choice must hold for each chosen run (a feature missing from one run would make the fit
drop that run or fail), so the page offers only names that every chosen run has.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from dyntools.hmm import FitResult
from dyntools.hmm.caveats import plural
from dyntools.metrics.feature import Feature
from dyntools.views.layers import network_order

# The features a fit of hook-point metrics starts from when no page chose hook points and
# metrics: the per-layer weight norms the paper's features are built from, at most this many.
DEFAULT_METRICS = ("l2", "spectral")
MAX_DEFAULT_FEATURES = 8


def in_every_run(index: pl.DataFrame, runs: Sequence[str], columns: Sequence[str]) -> pl.DataFrame:
    """The distinct ``columns`` values that each of ``runs`` has in ``index`` (which holds a
    ``run_id`` column), sorted; empty when no run is chosen."""
    if not runs:
        return index.select(columns).clear()
    wanted = list(dict.fromkeys(runs))
    present = index.filter(pl.col("run_id").is_in(wanted)).select("run_id", *columns).unique()
    counts = present.group_by(columns).agg(pl.len().alias("runs"))
    return counts.filter(pl.col("runs") == len(wanted)).select(columns).sort(columns)


def shared_features(index: pl.DataFrame, runs: Sequence[str]) -> list[Feature]:
    """The hook-point features computed for every one of ``runs`` (from the metric index)."""
    keys = in_every_run(index, runs, ["hook_point", "metric", "params"])
    return [Feature(hook, metric, params) for hook, metric, params in keys.iter_rows()]


def default_features(
    offered: Sequence[Feature],
    hooks: Sequence[str],
    metrics: Sequence[str],
    modules: pl.DataFrame,
) -> list[str]:
    """The features (formatted) a fit of hook-point metrics starts with: the offered ones of
    the hook points and metrics chosen on other pages, else the l2 and spectral norms of the
    layers, in network order; at most ``MAX_DEFAULT_FEATURES``."""
    chosen = [f for f in offered if f.hook_point in set(hooks) and f.metric in set(metrics)]
    wanted = tuple(metrics) if chosen else DEFAULT_METRICS
    picked = chosen or [f for f in offered if f.metric in wanted]
    hooks_in_order = network_order(list({f.hook_point: None for f in picked}), modules)
    rank = {hook: position for position, hook in enumerate(hooks_in_order)}
    picked.sort(key=lambda f: (rank[f.hook_point], wanted.index(f.metric)))
    return [f.format() for f in picked[:MAX_DEFAULT_FEATURES]]


def shared_scalars(scalars: pl.DataFrame, runs: Sequence[str]) -> list[str]:
    """Training scalar names (loss, accuracy, ...) logged by every one of ``runs``."""
    return in_every_run(scalars, runs, ["name"])["name"].to_list()


def split_heldout(
    runs: Sequence[str], heldout: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(fitted, held out) runs of ``runs``, each in the order of ``runs``; held-out names that
    are not among ``runs`` are ignored (they belong to an earlier choice of runs)."""
    out = set(heldout)
    fitted = tuple(r for r in runs if r not in out)
    return fitted, tuple(r for r in runs if r in out)


def fitted_runs(result: FitResult) -> tuple[str, ...]:
    """The runs a fit was trained on: its runs minus the held-out ones (which it only scores
    and decodes)."""
    return split_heldout(result.run_ids, result.config.heldout_runs)[0]


def heldout_runs(result: FitResult) -> tuple[str, ...]:
    """The runs a fit scored but did not train on, in the fit's run order."""
    return split_heldout(result.run_ids, result.config.heldout_runs)[1]


def runs_text(result: FitResult) -> str:
    """``"2 runs"``, or with held-out runs ``"1 run fitted, 1 held out"``, and the held-out
    checkpoints of the fitted runs (``"; 12 checkpoints held out"``)."""
    fitted, heldout = fitted_runs(result), heldout_runs(result)
    text = plural(len(fitted), "run")
    text = f"{text} fitted, {len(heldout)} held out" if heldout else text
    rows = heldout_checkpoints(result)
    return f"{text}; {plural(rows, 'checkpoint')} of the fitted runs held out" if rows else text


def heldout_checkpoints(result: FitResult) -> int:
    """How many checkpoints of the fitted runs were held out at random and scored."""
    if result.fitted is None:
        return 0
    in_fitted_runs = np.isin(_row_runs(result), fitted_runs(result))
    return int((~result.fitted & in_fitted_runs).sum())


def _row_runs(result: FitResult) -> np.ndarray:
    """The run id of every row of a fit."""
    return np.repeat(np.array(result.run_ids, dtype=object), result.lengths)
