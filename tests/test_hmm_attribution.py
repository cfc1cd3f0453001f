from __future__ import annotations

import numpy as np
import pytest
from hmm_fixtures import small_table
from scipy.stats import multivariate_normal

from dyntools.hmm.attribution import (
    emission_log_density,
    filtered_posteriors,
    posterior_gradient,
    rank_features,
    transition_drivers,
)
from dyntools.hmm.hmmlearn_backend import COVARIANCE_TYPES, FitTask, fit_one
from dyntools.hmm.hmmlearn_backend import posteriors as smoothed_posteriors
from dyntools.hmm.params import HMMParams


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
    filtered = filtered_posteriors(params, table.values, table.lengths)
    np.testing.assert_allclose(
        edge.gradient, posterior_gradient(params, table.values[10], filtered[10])[1]
    )
    np.testing.assert_allclose(edge.mean_difference, params.means[1] - params.means[0])
    # A run boundary is not a switch: runs are separate sequences.
    boundary = table.lengths[0]
    states2 = np.zeros(table.n_rows, dtype=np.int64)
    states2[boundary:] = 2
    assert transition_drivers(params, table.values, table.lengths, states2) == {}


def test_rank_features_by_magnitude() -> None:
    ranked = rank_features(np.array([0.1, -3.0, 2.0]), ["a", "b", "c"], top=2)
    assert ranked == (("b", -3.0), ("c", 2.0))
