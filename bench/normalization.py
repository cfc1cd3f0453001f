"""Global or per-run z-score: the evidence the default is chosen from (docs/design.md).

For each normalization, on the committed sample runs of each task and on synthetic runs that
reach the same three phases at very different times (changes moved by up to 60 of 200
checkpoints): the number of states BIC chooses, how often resamples of the runs choose it
again, how well their labels agree with the fit's (adjusted Rand index), the agreement with the
true phases (synthetic runs only), and the log-likelihood per checkpoint of 20 % of checkpoints
held out at random (EleutherAI's procedure), in the units of the raw features: a z-score
rescales every feature, so each held-out row's log-likelihood gets back the log-Jacobian
-sum_j log sigma_j of its own normalization, which makes the two comparable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import polars as pl

from dyntools.hmm import FitConfig, fit_latent_states
from dyntools.hmm.analysis import FitResult, feature_table, with_stability
from dyntools.hmm.features import FeatureTable
from dyntools.hmm.hmmlearn_backend import log_likelihood
from dyntools.hmm.stability import adjusted_rand

HELD_OUT = 0.2


@dataclass(frozen=True)
class Evidence:
    data: str
    normalize: str
    chosen: int
    share_chosen: float  # resamples choosing the same n
    agreement: float  # mean ARI of resample labels with the fit's
    truth: float | None  # ARI with the true phases
    heldout_per_step: float  # held-out log-likelihood per checkpoint, raw units


def evidence(
    name: str,
    metrics: pl.DataFrame,
    scalars: pl.DataFrame | None,
    base: FitConfig,
    truth: np.ndarray | None = None,
    resamples: int = 20,
    workers: int = 2,
) -> list[Evidence]:
    found = []
    for normalize in ("global", "per-run"):
        config = dataclasses.replace(base, normalize=normalize)
        result = fit_latent_states(metrics, scalars, config)
        table = feature_table(metrics, scalars, config)
        result = with_stability(result, table, resamples=resamples, workers=workers)
        assert result.stability is not None
        held = dataclasses.replace(config, heldout_checkpoints=HELD_OUT)
        found.append(
            Evidence(
                data=name,
                normalize=normalize,
                chosen=result.n_states,
                share_chosen=result.stability.share_choosing(result.n_states),
                agreement=result.stability.mean_agreement,
                truth=None if truth is None else adjusted_rand(truth, result.states),
                heldout_per_step=_heldout_raw(metrics, scalars, held),
            )
        )
    return found


def _heldout_raw(metrics: pl.DataFrame, scalars: pl.DataFrame | None, config: FitConfig) -> float:
    """Held-out log-likelihood per checkpoint of the fit's chosen model, in raw feature units."""
    result: FitResult = fit_latent_states(metrics, scalars, config)
    table = feature_table(metrics, scalars, config)
    held = ~table.fitted_rows
    scored = table.take(held)
    total = log_likelihood(result.params, scored.values, scored.lengths)
    return (total - _log_scales(table)[held].sum()) / int(held.sum())


def _log_scales(table: FeatureTable) -> np.ndarray:
    """Per row: sum_j log sigma_j of the z-score that normalized it."""
    fitted = table.fitted_rows
    if table.normalize == "global":
        sigma = table.raw[fitted].std(axis=0)
        return np.full(table.n_rows, np.log(sigma).sum())
    out = np.empty(table.n_rows)
    for rows in table.run_slices():
        block, mask = table.raw[rows], fitted[rows]
        sigma = (block[mask] if mask.any() else block).std(axis=0)
        out[rows] = np.log(sigma).sum()
    return out
