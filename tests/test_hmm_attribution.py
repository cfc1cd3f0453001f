from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hmm_fixtures import small_table
from scipy.stats import multivariate_normal

from dyntools.hmm.attribution import (
    Driver,
    emission_log_density,
    log_odds_gradient,
    posterior_gradient,
    rank_features,
    transition_drivers,
)
from dyntools.hmm.features import build_feature_table
from dyntools.hmm.hmmlearn_backend import COVARIANCE_TYPES, FitTask, fit_one
from dyntools.hmm.hmmlearn_backend import posteriors as smoothed_posteriors
from dyntools.hmm.params import HMMParams
from dyntools.hmm.synthetic import make_regime_runs


def fitted(covariance_type: str) -> HMMParams:
    table = small_table()
    out = fit_one(table.values, table.lengths, FitTask(3, 2, covariance_type))
    assert out.params is not None
    return out.params


def log_filtered(params: HMMParams, x: np.ndarray, t: int, target: int) -> float:
    """log p(z_t = target | x_1..t), forward algorithm written out with scipy densities."""
    covs = params.full_covariances()
    alpha = None
    for s in range(t + 1):
        dens = np.array([multivariate_normal(params.means[k], covs[k]).pdf(x[s]) for k in range(3)])
        alpha = params.startprob * dens if alpha is None else (alpha @ params.transmat) * dens
        alpha = alpha / alpha.sum()
    assert alpha is not None
    return float(np.log(alpha[target]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gradient_matches_finite_differences(covariance_type: str) -> None:
    params = fitted(covariance_type)
    table = small_table()
    x = table.values[:40].copy()
    t = 35
    filtered = filtered_posteriors(params, x, [40])
    grad = posterior_gradient(params, x[t], filtered[t])
    h = 1e-5
    for target in range(3):
        numeric = np.empty(x.shape[1])
        for k in range(x.shape[1]):
            up, down = x.copy(), x.copy()
            up[t, k] += h
            down[t, k] -= h
            numeric[k] = (
                log_filtered(params, up, t, target) - log_filtered(params, down, t, target)
            ) / (2 * h)
        np.testing.assert_allclose(grad[target], numeric, rtol=1e-4, atol=1e-6)


def _log_odds(params: HMMParams, x: np.ndarray, t: int, source: int, target: int) -> float:
    return log_filtered(params, x, t, target) - log_filtered(params, x, t, source)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_odds_gradient_matches_finite_differences(covariance_type: str) -> None:
    params = fitted(covariance_type)
    x = small_table().values[:40].copy()
    t, h = 20, 1e-5
    for source, target in ((0, 1), (2, 0)):
        grad = log_odds_gradient(params, x[t], source, target)
        numeric = np.empty(x.shape[1])
        for k in range(x.shape[1]):
            up, down = x.copy(), x.copy()
            up[t, k] += h
            down[t, k] -= h

            numeric[k] = (
                _log_odds(params, up, t, source, target)
                - _log_odds(params, down, t, source, target)
            ) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def filtered_posteriors(
    params: HMMParams, values: np.ndarray, lengths: Sequence[int]
) -> np.ndarray:
    """p(z_t | x_1..t) of every row (the forward algorithm, each run on its own): the
    quantity the attributions differentiate, computed here independently of them."""
    log_b = emission_log_density(params, values)
    log_a = np.log(np.maximum(params.transmat, 1e-300))
    log_pi = np.log(np.maximum(params.startprob, 1e-300))
    out = np.empty_like(log_b)
    start = 0
    for length in lengths:
        prev = None
        for t in range(start, start + length):
            if prev is None:
                log_alpha = log_pi + log_b[t]
            else:
                log_alpha = np.logaddexp.reduce(prev[:, None] + log_a, axis=0) + log_b[t]
            log_alpha -= np.logaddexp.reduce(log_alpha)
            out[t] = np.exp(log_alpha)
            prev = log_alpha
        start += length
    return out


def test_the_feature_that_alone_drives_a_transition_ranks_first() -> None:
    means = np.zeros((2, 5))
    means[1, 2] = 3.0  # only feature 2 (layer0/m2) moves between the regimes
    runs = make_regime_runs(n_runs=4, n_steps=60, n_features=5, n_regimes=2, means=means, seed=4)
    table = build_feature_table(runs.metrics)
    out = fit_one(table.values, table.lengths, FitTask(2, 0, "diag"))
    assert out.params is not None
    states = np.concatenate([runs.states[r] for r in table.run_ids])
    # Which fitted state is regime 1: the one with the larger mean of feature 2.
    if out.params.means[0, 2] > out.params.means[1, 2]:
        states = 1 - states
    drivers = transition_drivers(out.params, table.values, table.lengths, states)
    edge = drivers[(0, 1)]
    assert edge.n_switches == 4
    top = rank_features(edge.gradient, table.columns, 5, edge.gradient_spread)
    assert top[0].feature == "layer0/m2" and top[0].value > 1.0
    assert abs(top[1].value) < 0.25 * top[0].value
    assert np.isfinite(top[0].spread)


def test_emission_density_and_filter_against_references() -> None:
    params = fitted("full")
    table = small_table()
    dens = emission_log_density(params, table.values[:5])
    covs = params.full_covariances()
    for k in range(3):
        expected = multivariate_normal(params.means[k], covs[k]).logpdf(table.values[:5])
        np.testing.assert_allclose(dens[:, k], expected)
    # At the last checkpoint of a run, filtered and smoothed posteriors coincide.
    filtered = filtered_posteriors(params, table.values, table.lengths)
    smoothed = smoothed_posteriors(params, table.values, table.lengths)
    ends = np.cumsum(table.lengths) - 1
    np.testing.assert_allclose(filtered[ends], smoothed[ends], atol=1e-8)


def test_drivers_average_over_observed_switches() -> None:
    params = fitted("diag")
    table = small_table()
    states = np.zeros(table.n_rows, dtype=np.int64)
    states[10:] = 1  # one switch 0 -> 1 at row 10, inside the first run
    drivers = transition_drivers(params, table.values, table.lengths, states)
    assert list(drivers) == [(0, 1)]
    edge = drivers[(0, 1)]
    assert edge.n_switches == 1
    # Evaluated at the last checkpoint of the old state (row 9), not the first of the new.
    np.testing.assert_allclose(edge.gradient, log_odds_gradient(params, table.values[9], 0, 1))
    assert np.isnan(edge.gradient_spread).all()  # one switch: no spread to report
    np.testing.assert_allclose(edge.mean_difference, params.means[1] - params.means[0])
    # A run boundary is not a switch: runs are separate sequences.
    boundary = table.lengths[0]
    states2 = np.zeros(table.n_rows, dtype=np.int64)
    states2[boundary:] = 2
    assert transition_drivers(params, table.values, table.lengths, states2) == {}


def test_rank_features_by_magnitude() -> None:
    ranked = rank_features(np.array([0.1, -3.0, 2.0]), ["a", "b", "c"], top=2)
    assert [(d.feature, d.value) for d in ranked] == [("b", -3.0), ("c", 2.0)]
    spread = rank_features(np.array([1.0, 2.0]), ["a", "b"], 1, np.array([0.1, 0.5]))
    assert spread == (Driver("b", 2.0, 0.5),)
    assert spread[0].text() == "b +2 ±0.5" and Driver("a", -0.25).text() == "a -0.25"
