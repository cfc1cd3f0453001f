"""Tidy metric frames -> the normalized feature table an HMM is fitted on.

Input frames (as the store gives them):

- metrics: ``run_id: Utf8, step: Int64, epoch: Float64 (nullable), hook_point: Utf8,
  metric: Utf8, params: Utf8 (optional, '' for none), value: Float64 (nullable)``; network
  values have hook point ''.
- scalars: ``run_id: Utf8, step: Int64, epoch: Float64 (nullable), name: Utf8, value: Float64``

A feature is a ``Feature`` (hook point, metric, params); its column is named by its text form
(``"blocks.0.attn/l2"``; ``"l2"`` for the network-wide mean the paper uses). Training scalars
used as features are named ``"scalar:{name}"``.

Rows are one per (run, checkpoint), runs in the order asked for (sorted run ids by default),
checkpoints sorted by their real step. Nothing is dropped silently: a run with too few
checkpoints, a column with missing values and a column that is constant (which a z-score
would turn into NaN) are dropped, each with a ``Notice`` that says which and why.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from dyntools.hmm.normalize import Notice, drop_short_runs, usable_columns, zscore
from dyntools.metrics.feature import Feature
from dyntools.metrics.kinds import Against, TemporalMetric, compared_with
from dyntools.metrics.registry import PAPER_FEATURES as PAPER_FEATURES
from dyntools.metrics.registry import REGISTRY

SCALAR_PREFIX = "scalar:"
Normalization = Literal["per-run", "global"]
NORMALIZATIONS: tuple[str, ...] = ("per-run", "global")


@dataclass(frozen=True)
class FeatureTable:
    """The HMM input: normalized rows of all runs stacked, with their provenance."""

    columns: tuple[str, ...]
    run_ids: tuple[str, ...]
    lengths: tuple[int, ...]
    steps: np.ndarray  # (n_rows,) int64
    epochs: np.ndarray  # (n_rows,) float64, NaN where the store had no epoch
    values: np.ndarray  # (n_rows, n_features) normalized
    raw: np.ndarray  # (n_rows, n_features) before normalization
    normalize: str
    notices: tuple[Notice, ...]
    # Which rows the model is fitted on (the others are held out: whole runs, or random
    # checkpoints); the normalization statistics come from these rows only. None: every row.
    fitted: np.ndarray | None = None

    @property
    def fitted_rows(self) -> np.ndarray:
        """The fitted-row mask, every row when none is held out."""
        return np.ones(self.n_rows, dtype=bool) if self.fitted is None else self.fitted

    @property
    def held_out(self) -> bool:
        return not bool(self.fitted_rows.all())

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def run_slices(self) -> list[slice]:
        """The row range of each run, in run order."""
        bounds = np.concatenate([[0], np.cumsum(self.lengths)])
        return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def row_runs(self) -> np.ndarray:
        """The run id of every row."""
        return np.repeat(np.array(self.run_ids, dtype=object), self.lengths)

    def subset(self, run_ids: Sequence[str]) -> FeatureTable:
        """The same table restricted to some runs (already normalized; no new notices)."""
        unknown = [r for r in run_ids if r not in self.run_ids]
        if unknown:
            raise LookupError(f"runs {unknown} are not in the feature table; known: {self.run_ids}")
        slices = self.run_slices()
        pick = [self.run_ids.index(r) for r in run_ids]
        rows = np.concatenate([np.arange(slices[i].start, slices[i].stop) for i in pick])
        return self._rows(rows, tuple(run_ids), tuple(self.lengths[i] for i in pick))

    def take(self, mask: np.ndarray) -> FeatureTable:
        """The rows of ``mask``, each run's in order (a run left with none is dropped): the
        fitted rows, or the held-out ones, as sequences."""
        runs = self.row_runs()
        kept = [
            (run, int(mask[s].sum()))
            for run, s in zip(self.run_ids, self.run_slices(), strict=True)
        ]
        kept = [(run, n) for run, n in kept if n]
        rows = np.flatnonzero(mask)
        assert all(runs[r] in dict(kept) for r in rows)
        return self._rows(rows, tuple(r for r, _ in kept), tuple(n for _, n in kept))

    def _rows(
        self, rows: np.ndarray, run_ids: tuple[str, ...], lengths: tuple[int, ...]
    ) -> FeatureTable:
        return FeatureTable(
            columns=self.columns,
            run_ids=run_ids,
            lengths=lengths,
            steps=self.steps[rows],
            epochs=self.epochs[rows],
            values=self.values[rows],
            raw=self.raw[rows],
            normalize=self.normalize,
            notices=self.notices,
            fitted=None if self.fitted is None else self.fitted[rows],
        )

    def to_frame(self) -> pl.DataFrame:
        """The normalized table as a polars frame (run_id, step, epoch, one column per feature)."""
        frame = pl.DataFrame(
            {
                "run_id": list(self.row_runs()),
                "step": self.steps,
                "epoch": self.epochs,
            }
        )
        return frame.with_columns(
            [pl.Series(name, self.values[:, k]) for k, name in enumerate(self.columns)]
        )


def scalar_column(name: str) -> str:
    """The column name of a training scalar used as a feature."""
    return SCALAR_PREFIX + name


def paper_features() -> list[Feature]:
    """The 14 features of the paper: network-wide means and pooled statistics."""
    return [Feature("", name) for name in PAPER_FEATURES]


def build_feature_table(
    metrics: pl.DataFrame,
    *,
    features: Sequence[Feature] | None = None,
    paper: bool = False,
    runs: Sequence[str] | None = None,
    scalars: pl.DataFrame | None = None,
    scalar_features: Sequence[str] = (),
    normalize: str = "global",
    heldout_runs: Sequence[str] = (),
    heldout_fraction: float = 0.0,
    seed: int = 0,
) -> FeatureTable:
    """Pivot tidy metrics (and optionally training scalars) into a normalized feature table.

    ``features`` picks features; ``paper`` adds the 14 paper features; with neither, every
    feature in ``metrics`` is used. ``heldout_runs`` and a ``heldout_fraction`` of each other
    run's checkpoints (chosen at random with ``seed``, EleutherAI's procedure) are held out:
    not fitted, and not part of the normalization statistics or the constant-column check.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalize!r}; choose one of {NORMALIZATIONS}")
    wanted = list(features or [])
    if paper:
        wanted += [key for key in paper_features() if key not in wanted]
    tidy = _tidy_features(metrics, wanted, scalars, scalar_features)
    run_order = _run_order(tidy, runs)
    tidy = tidy.filter(pl.col("run_id").is_in(run_order))
    duplicates = tidy.group_by(["run_id", "step", "feature"]).len().filter(pl.col("len") > 1)
    if duplicates.height:
        first = duplicates.row(0, named=True)
        raise ValueError(
            f"{duplicates.height} (run, step, feature) entries appear more than once, e.g. "
            f"run {first['run_id']!r} step {first['step']} {first['feature']!r}; "
            "deduplicate the metrics before fitting"
        )
    columns = _column_order(tidy, wanted, scalar_features)
    wide = tidy.pivot(on="feature", index=["run_id", "step"], values="value")
    for name in columns:
        if name not in wide.columns:  # a wanted feature with no rows at all
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    epochs = tidy.group_by(["run_id", "step"]).agg(pl.col("epoch").drop_nulls().first())
    wide = wide.join(epochs, on=["run_id", "step"], how="left")
    order = pl.DataFrame({"run_id": run_order, "_order": list(range(len(run_order)))})
    wide = wide.join(order, on="run_id").sort(["_order", "step"])

    notices: list[Notice] = []
    wide = drop_short_runs(wide, normalize, notices)
    raw = wide.select(columns).to_numpy().astype(np.float64) if columns else np.empty((0, 0))
    run_ids = tuple(wide.unique("run_id", maintain_order=True)["run_id"].to_list())
    lengths = tuple(int(n) for n in wide.group_by("_order", maintain_order=True).len()["len"])
    fitted = heldout_mask(run_ids, lengths, heldout_runs, heldout_fraction, seed)
    keep = usable_columns(raw, columns, run_ids, lengths, normalize, notices, fitted)
    raw = raw[:, keep]
    kept = tuple(c for c, k in zip(columns, keep, strict=True) if k)
    if not kept:
        raise ValueError(
            "no usable feature is left after dropping constant and incomplete columns: "
            + "; ".join(n.message for n in notices)
            + "; pick other features or runs"
        )
    notices += _initial_notices(metrics, kept, run_ids)
    return FeatureTable(
        columns=kept,
        run_ids=run_ids,
        lengths=lengths,
        steps=wide["step"].to_numpy().astype(np.int64),
        epochs=wide["epoch"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        values=zscore(raw, lengths, normalize, fitted),
        raw=raw,
        normalize=normalize,
        notices=tuple(notices),
        fitted=None if fitted.all() else fitted,
    )


def heldout_mask(
    run_ids: Sequence[str],
    lengths: Sequence[int],
    heldout_runs: Sequence[str],
    fraction: float,
    seed: int,
) -> np.ndarray:
    """True for the rows that are fitted: not in a held-out run, and not among the random
    ``fraction`` of each other run's checkpoints held out (at least two stay fitted per run)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction of checkpoints must be in [0, 1), got {fraction}")
    unknown = sorted(set(heldout_runs) - set(run_ids))
    if unknown:
        raise LookupError(f"held-out runs {unknown} are not among the runs {list(run_ids)}")
    rng = np.random.default_rng(seed)
    parts = []
    for run, n in zip(run_ids, lengths, strict=True):
        fitted = np.full(n, run not in heldout_runs)
        out = min(round(fraction * n), max(0, n - 2)) if fitted.any() else 0
        if out:
            fitted[rng.choice(n, size=out, replace=False)] = False
        parts.append(fitted)
    mask = np.concatenate(parts) if parts else np.ones(0, dtype=bool)
    if lengths and not mask.any():
        raise ValueError("every run is held out: keep at least one run to fit the model on")
    return mask


def _initial_notices(
    metrics: pl.DataFrame, columns: Sequence[str], run_ids: Sequence[str]
) -> list[Notice]:
    """Say where a feature compared with the "initial" checkpoint compares with a later one:
    runs whose first saved checkpoint is not step 0 (a Hugging Face run's first
    ``checkpoint-N``, say)."""
    features = [Feature.parse(c) for c in columns if not c.startswith(SCALAR_PREFIX)]
    initial = [f for f in features if _against(f.metric) is Against.INITIAL]
    if not initial:
        return []
    first = (
        metrics.filter(pl.col("run_id").is_in(list(run_ids)))
        .group_by("run_id")
        .agg(pl.col("step").min())
    )
    late = sorted((run, step) for run, step in first.iter_rows() if step != 0)
    if not late:
        return []
    where = "; ".join(f"{run} with {compared_with(Against.INITIAL, step)}" for run, step in late)
    return [Notice("reference", f.format(), f"{f.format()} compares {where}") for f in initial]


def _against(name: str) -> Against | None:
    entry = REGISTRY.get(name)
    return entry.against if isinstance(entry, TemporalMetric) else None


def _tidy_features(
    metrics: pl.DataFrame,
    wanted: list[Feature],
    scalars: pl.DataFrame | None,
    scalar_features: Sequence[str],
) -> pl.DataFrame:
    """One long frame run_id, step, epoch, feature, value of everything asked for."""
    if "params" not in metrics.columns:
        metrics = metrics.with_columns(params=pl.lit(""))
    keys = metrics.select("hook_point", "metric", "params").unique()
    names_of = keys.with_columns(
        feature=pl.Series(
            [Feature(h, m, p).format() for h, m, p in keys.iter_rows()], dtype=pl.String
        )
    )
    frame = metrics.join(names_of, on=["hook_point", "metric", "params"]).select(
        "run_id",
        "step",
        pl.col("epoch").cast(pl.Float64),
        "feature",
        pl.col("value").cast(pl.Float64),
    )
    if wanted:
        names = [f.format() for f in wanted]
        present = set(frame["feature"].unique().to_list())
        missing = [n for n in names if n not in present]
        if len(missing) == len(names):
            raise LookupError(
                f"none of the features {names[:5]} is in the metrics; "
                f"known: {sorted(present)[:20]}; compute them first"
            )
        frame = frame.filter(pl.col("feature").is_in(names))
    parts = [frame]
    if scalar_features:
        if scalars is None:
            raise ValueError(f"scalar features {list(scalar_features)} asked for but no scalars")
        known = set(scalars["name"].unique().to_list())
        unknown = [s for s in scalar_features if s not in known]
        if unknown:
            raise LookupError(f"unknown training scalars {unknown}; known: {sorted(known)}")
        parts.append(
            scalars.filter(pl.col("name").is_in(list(scalar_features))).select(
                "run_id",
                "step",
                pl.col("epoch").cast(pl.Float64),
                (pl.lit(SCALAR_PREFIX) + pl.col("name")).alias("feature"),
                pl.col("value").cast(pl.Float64),
            )
        )
    tidy = pl.concat(parts, how="vertical")
    # NaN and null both mean "missing" from here on.
    return tidy.with_columns(pl.col("value").fill_nan(None))


def _run_order(tidy: pl.DataFrame, runs: Sequence[str] | None) -> list[str]:
    present = sorted(set(tidy["run_id"].to_list()))
    if runs is None:
        if not present:
            raise ValueError("the metrics frame is empty: compute metrics before fitting")
        return present
    unknown = [r for r in runs if r not in present]
    if unknown:
        raise LookupError(f"runs {unknown} have no metrics; known runs: {present}")
    if not runs:
        raise ValueError("no runs chosen: pick at least one run")
    return list(dict.fromkeys(runs))


def _column_order(
    tidy: pl.DataFrame, wanted: list[Feature], scalar_features: Sequence[str]
) -> list[str]:
    scalar_names = [scalar_column(s) for s in scalar_features]
    if wanted:
        names = [f.format() for f in wanted]
    else:
        names = sorted(set(tidy["feature"].to_list()) - set(scalar_names))
    return names + scalar_names


def align_scalars(table: FeatureTable, scalars: pl.DataFrame | None) -> dict[str, np.ndarray]:
    """Each training scalar at every row of ``table`` (NaN where a checkpoint lacks it)."""
    if scalars is None or scalars.height == 0:
        return {}
    rows = pl.DataFrame(
        {"run_id": list(table.row_runs()), "step": table.steps, "_row": np.arange(table.n_rows)}
    )
    wide = scalars.select("run_id", "step", "name", pl.col("value").cast(pl.Float64)).pivot(
        on="name", index=["run_id", "step"], values="value", aggregate_function="first"
    )
    joined = rows.join(wide, on=["run_id", "step"], how="left").sort("_row")
    names = [c for c in wide.columns if c not in ("run_id", "step")]
    return {
        name: joined[name].cast(pl.Float64).fill_null(np.nan).to_numpy() for name in sorted(names)
    }
