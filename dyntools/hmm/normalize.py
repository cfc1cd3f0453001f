"""Z-scores of the feature table, and what cannot be z-scored: dropped with a ``Notice``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# A column whose spread is below this (relative to its size) is constant for a z-score.
_CONSTANT_RTOL = 1e-10


@dataclass(frozen=True)
class Notice:
    """Something left out of the feature table, and why (shown to the user)."""

    kind: str  # "constant-column", "missing-values", "short-run", "reference"
    subject: str  # the column or run concerned
    message: str


def drop_short_runs(wide: pl.DataFrame, normalize: str, notices: list[Notice]) -> pl.DataFrame:
    """Per-run z-scores need two checkpoints; a one-checkpoint run is dropped with a notice."""
    if normalize != "per-run":
        return wide
    counts = wide.group_by("run_id").len()
    short = counts.filter(pl.col("len") < 2)["run_id"].to_list()
    for run in sorted(short):
        notices.append(
            Notice(
                "short-run",
                run,
                f"run {run!r} dropped: it has one checkpoint, and a per-run z-score needs "
                "at least two (use --normalize global to keep it)",
            )
        )
    if len(short) == counts.height:
        raise ValueError(
            "every run has a single checkpoint; a per-run z-score needs at least two: "
            "use global normalization"
        )
    return wide.filter(~pl.col("run_id").is_in(short))


def usable_columns(
    raw: np.ndarray,
    columns: list[str],
    run_ids: tuple[str, ...],
    lengths: tuple[int, ...],
    normalize: str,
    notices: list[Notice],
    fitted: np.ndarray | None = None,
) -> np.ndarray:
    """A mask of the columns that have no missing value and are not constant (on the fitted
    rows: their statistics normalize every row)."""
    keep = np.ones(len(columns), dtype=bool)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    fitted = np.ones(raw.shape[0], dtype=bool) if fitted is None else fitted
    for k, name in enumerate(columns):
        column = raw[:, k]
        missing = ~np.isfinite(column)
        if missing.any():
            runs = [
                run_ids[r] for r in range(len(run_ids)) if missing[bounds[r] : bounds[r + 1]].any()
            ]
            keep[k] = False
            notices.append(
                Notice(
                    "missing-values",
                    name,
                    f"feature {name!r} dropped: {int(missing.sum())} of {len(column)} values "
                    f"missing (runs {runs[:5]}{'...' if len(runs) > 5 else ''})",
                )
            )
            continue
        groups = (
            [
                _reference(column[bounds[r] : bounds[r + 1]], fitted[bounds[r] : bounds[r + 1]])
                for r in range(len(run_ids))
            ]
            if normalize == "per-run"
            else [column[fitted]]
        )
        flat = [
            run_ids[r] if normalize == "per-run" else "all runs"
            for r, g in enumerate(groups)
            if _is_constant(g)
        ]
        if flat:
            keep[k] = False
            notices.append(
                Notice(
                    "constant-column",
                    name,
                    f"feature {name!r} dropped: constant within {flat[:5]}"
                    f"{'...' if len(flat) > 5 else ''}, so its z-score is undefined",
                )
            )
    return keep


def _is_constant(values: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(values))))
    return bool(np.ptp(values) <= _CONSTANT_RTOL * scale)


def _reference(block: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The rows a run's statistics come from: its fitted rows, or all of a held-out run's."""
    return block[fitted] if fitted.any() else block


def zscore(
    raw: np.ndarray, lengths: tuple[int, ...], normalize: str, fitted: np.ndarray | None = None
) -> np.ndarray:
    """z-scores with the mean and standard deviation of the fitted rows: of all of them
    (global), or of each run's (per-run; a held-out run uses its own rows, which tells the
    fitted runs nothing)."""
    fitted = np.ones(raw.shape[0], dtype=bool) if fitted is None else fitted
    if normalize == "global":
        reference = raw[fitted]
        return np.asarray((raw - reference.mean(axis=0)) / reference.std(axis=0))
    out = np.empty_like(raw)
    start = 0
    for n in lengths:
        block = raw[start : start + n]
        reference = _reference(block, fitted[start : start + n])
        out[start : start + n] = (block - reference.mean(axis=0)) / reference.std(axis=0)
        start += n
    return out
