from __future__ import annotations

import numpy as np
import pytest
from hmm_fixtures import small_table
from hmmlearn import hmm

from dyntools.hmm.hmmlearn_backend import (
    COVARIANCE_TYPES,
    FitTask,
    HMMParams,
    fit_many,
    fit_one,
    log_likelihood,
    n_parameters,
    parallel_map,
    posteriors,
)


def hmmlearn_n_parameters(n_states: int, n_features: int, covariance_type: str) -> int:
    """hmmlearn's own count (its private helper), for checking ``n_parameters``."""
    model = hmm.GaussianHMM(n_components=n_states, covariance_type=covariance_type)
    model.n_features = n_features
    return int(sum(model._get_n_fit_scalars_per_param().values()))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parameter_count_equals_hmmlearns(covariance_type: str) -> None:
    for n in (1, 2, 5):
        for d in (1, 3, 20):
            assert n_parameters(n, d, covariance_type) == hmmlearn_n_parameters(
                n, d, covariance_type
            )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_matches_hmmlearn_and_bic_formula(covariance_type: str) -> None:
    table = small_table()
    out = fit_one(table.values, table.lengths, FitTask(3, 7, covariance_type))
    assert out.params is not None
    model = hmm.GaussianHMM(3, covariance_type=covariance_type, init_params="")
    model.startprob_, model.transmat_ = out.params.startprob, out.params.transmat
    model.means_, model.covars_ = out.params.means, out.params.covars
    assert out.log_likelihood == pytest.approx(model.score(table.values, table.lengths))
    k = n_parameters(3, table.values.shape[1], covariance_type)
    ours_bic = -2 * out.log_likelihood + k * np.log(table.n_rows)
    assert ours_bic == pytest.approx(model.bic(table.values, table.lengths))


def test_same_seed_same_fit_and_different_seed_runs_differently() -> None:
    table = small_table()
    a = fit_one(table.values, table.lengths, FitTask(4, 11))
    b = fit_one(table.values, table.lengths, FitTask(4, 11))
    assert a.params is not None and b.params is not None
    np.testing.assert_array_equal(a.params.means, b.params.means)
    np.testing.assert_array_equal(a.params.transmat, b.params.transmat)
    assert a.log_likelihood == b.log_likelihood and a.n_iter == b.n_iter


def test_scaling_and_log_implementations_agree() -> None:
    table = small_table()
    fits = [
        fit_one(table.values, table.lengths, FitTask(3, 5, "diag", 50, 1e-6, impl))
        for impl in ("scaling", "log")
    ]
    scaled, logged = (f.params for f in fits)
    assert scaled is not None and logged is not None
    np.testing.assert_allclose(scaled.means, logged.means, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(scaled.transmat, logged.transmat, rtol=1e-6, atol=1e-8)
    assert fits[0].log_likelihood == pytest.approx(fits[1].log_likelihood, rel=1e-9)


def test_convergence_is_reported_honestly() -> None:
    table = small_table()
    short = fit_one(table.values, table.lengths, FitTask(5, 1, n_iter=2, tol=1e-12))
    assert short.n_iter == 2 and not short.converged  # the budget ran out: not converged
    long = fit_one(table.values, table.lengths, FitTask(3, 1, n_iter=500, tol=1e-2))
    assert long.converged and long.n_iter < 500


def test_parallel_fits_equal_sequential_fits() -> None:
    table = small_table()
    tasks = [FitTask(n, 100 + n) for n in (1, 2, 3)]
    sequential = fit_many(table.values, table.lengths, tasks, workers=1)
    parallel = fit_many(table.values, table.lengths, tasks, workers=2)
    for s, p in zip(sequential, parallel, strict=True):
        assert s.task == p.task and s.log_likelihood == p.log_likelihood
        assert s.params is not None and p.params is not None
        assert log_likelihood(p.params, table.values, table.lengths) == pytest.approx(
            s.log_likelihood
        )


def test_unknown_covariance_type() -> None:
    table = small_table()
    with pytest.raises(ValueError, match="unknown covariance type 'banded'"):
        fit_one(table.values, table.lengths, FitTask(2, 0, "banded"))


def test_a_restart_that_cannot_start_is_reported_as_failed() -> None:
    values = np.array([[0.0, 1.0], [1.0, 0.0]])  # 2 rows cannot seed 3 states
    out = fit_one(values, [2], FitTask(3, 0))
    assert out.params is None and out.log_likelihood == -np.inf and not out.converged
    assert "n_samples=2" in out.error


def test_rows_far_from_every_state_are_scored_in_the_log_domain() -> None:
    # A held-out run unlike the fitted ones: hmmlearn's scaled forward pass underflows on the
    # outlier (the emission probability exp(-5e7) is 0); the score must still be exact.
    one = HMMParams("diag", np.ones(1), np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)))
    values = np.array([[0.5], [1e4], [-1.0]])
    expected = float(np.sum(-0.5 * np.log(2 * np.pi) - values**2 / 2))
    assert log_likelihood(one, values, [3]) == pytest.approx(expected, rel=1e-12)
    two = HMMParams(
        "diag",
        np.array([0.5, 0.5]),
        np.array([[0.9, 0.1], [0.1, 0.9]]),
        np.array([[0.0], [5.0]]),
        np.ones((2, 1)),
    )
    reference = hmm.GaussianHMM(2, covariance_type="diag", implementation="log", init_params="")
    reference.startprob_, reference.transmat_ = two.startprob, two.transmat
    reference.means_, reference.covars_ = two.means, two.covars
    assert posteriors(two, values, [3]) == pytest.approx(reference.predict_proba(values, [3]))
    assert log_likelihood(two, values, [3]) == pytest.approx(reference.score(values, [3]))


def test_workers_none_is_one_per_core_and_gives_the_same_results() -> None:
    items = [-3, 1, -2, 5]
    assert parallel_map(abs, items, None) == parallel_map(abs, items, 1) == [3, 1, 2, 5]
