"""Latent-state fits from the store: read the feature frames, fit or read back a stored fit.

Ties ``dyntools.store`` (the numbers) to ``dyntools.hmm`` (the model); neither knows the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from dyntools.hmm import (
    PAPER_HOOK_POINT,
    FitConfig,
    FitResult,
    config_hash,
    fit_latent_states,
    fit_result_from_json,
    fit_result_to_json,
)
from dyntools.metrics import ALL_HOOK_POINTS, PAPER_FEATURES_TENSOR
from dyntools.store import Store

WEIGHT_PARAMS = ""  # the default weight-metric parameters (attention heads split)


@dataclass(frozen=True)
class ServedFit:
    """A fit, whether it was read back from the store, and how long getting it took."""

    result: FitResult
    config: FitConfig
    config_hash: str
    from_store: bool
    seconds: float


def paper_feature_rows(metrics: pl.DataFrame) -> pl.DataFrame:
    """The 14 paper features under the HMM's hook point name, one selection's worth.

    Paper features are stored per hook-point selection (the ``params`` of the "(all)" rows). The
    widest selection of each run (most hook points, i.e. the longest params text) is the one
    used here: per run, since runs of different models in one store have different selections.
    """
    paper = metrics.filter(
        (pl.col("hook_point") == ALL_HOOK_POINTS) & (pl.col("tensor") == PAPER_FEATURES_TENSOR)
    )
    if paper.is_empty():
        return paper
    widest = pl.col("params").sort_by(pl.col("params").str.len_chars(), pl.col("params")).last()
    return paper.filter(pl.col("params") == widest.over("run_id")).with_columns(
        pl.lit(PAPER_HOOK_POINT).alias("hook_point")
    )


def hmm_frames(
    store: Store, runs: Sequence[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metrics, scalars) tidy frames for the HMM: hook-point values and paper features."""
    metrics = store.read_metrics(run_ids=list(runs) if runs else None)
    hook_level = metrics.filter(
        (pl.col("tensor") == "")
        & (pl.col("hook_point") != ALL_HOOK_POINTS)
        & (pl.col("params") == WEIGHT_PARAMS)
    )
    frame = pl.concat([hook_level, paper_feature_rows(metrics)]).select(
        "run_id",
        "step",
        pl.col("epoch").cast(pl.Int64, strict=False),
        "hook_point",
        "metric",
        "value",
    )
    scalars = store.read_scalars(run_ids=list(runs) if runs else None).select(
        "run_id", "step", pl.col("epoch").cast(pl.Int64, strict=False), "name", "value"
    )
    return frame, scalars


def data_fingerprint(metrics: pl.DataFrame, scalars: pl.DataFrame) -> str:
    """A hash of the numbers a fit sees, so a stored fit is reused only for the same data."""
    digest = hashlib.sha256()
    for frame in (metrics, scalars):
        # Row hashes are fast; they may change with the polars version, which only costs a refit.
        ordered = frame.sort(frame.columns)
        digest.update(ordered.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class FitData:
    """The store's frames for fitting and their fingerprint (the app caches this per data
    version, so a what-if refit does not read and hash every metric again)."""

    metrics: pl.DataFrame
    scalars: pl.DataFrame
    fingerprint: str


def fit_data(store: Store) -> FitData:
    """Read the fitting frames of ``store`` and fingerprint them."""
    metrics, scalars = hmm_frames(store)
    return FitData(metrics, scalars, data_fingerprint(metrics, scalars))


def fit_or_load(
    store: Store, config: FitConfig, *, n_jobs: int = 1, data: FitData | None = None
) -> ServedFit:
    """The fit for ``config`` on the store's data: read back when stored, else fitted and saved.

    ``data``: the store's frames already read by ``fit_data`` (must be of the same store).
    """
    started = time.monotonic()
    data = data if data is not None else fit_data(store)
    metrics, scalars = data.metrics, data.scalars
    if metrics.is_empty():
        raise LookupError(
            f"no metrics in {store.path}: run `dyntools compute FOLDER` before fitting"
        )
    config = dataclasses.replace(config, data_fingerprint=data.fingerprint)
    key = config_hash(config)
    stored = store.load_fit(key)
    if stored is not None:
        result = fit_result_from_json(json.loads(stored.result_json))
        return ServedFit(result, config, key, True, time.monotonic() - started)
    result = fit_latent_states(metrics, scalars, config, n_jobs=n_jobs)
    store.save_fit(key, dataclasses.asdict(config), json.dumps(fit_result_to_json(result)))
    return ServedFit(result, config, key, False, time.monotonic() - started)
