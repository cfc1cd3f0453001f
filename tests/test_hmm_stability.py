"""The bootstrap over runs: clear phases are found again in every resample, noise is not, and
the report and the caveats say which."""

from __future__ import annotations

import numpy as np
import pytest

from dyntools.hmm import FitConfig, fit_latent_states
from dyntools.hmm.analysis import feature_table, with_stability
from dyntools.hmm.caveats import CaveatCode
from dyntools.hmm.report import format_fit_report
from dyntools.hmm.stability import adjusted_rand, matched_shares
from dyntools.hmm.synthetic import make_regime_runs


def _fit_with_stability(
    separation: float, workers: int = 1, seed: int = 2, n_states: int | None = None
) -> object:
    runs = make_regime_runs(
        n_runs=8, n_steps=40, n_features=4, n_regimes=3, separation=separation, seed=seed
    )
    config = FitConfig(max_states=4, restarts=2, n_states=n_states)
    result = fit_latent_states(runs.metrics, runs.scalars, config)
    table = feature_table(runs.metrics, runs.scalars, config)
    return with_stability(result, table, resamples=8, workers=workers)


def test_clear_phases_are_found_in_every_resample() -> None:
    result = _fit_with_stability(separation=4.0)
    found = result.stability  # type: ignore[attr-defined]
    assert result.n_states == 3  # type: ignore[attr-defined]
    assert found.share_choosing(3) >= 0.75
    assert found.mean_agreement > 0.9
    assert min(found.state_agreement) > 0.9
    assert CaveatCode.UNSTABLE not in {c.code for c in result.caveats}  # type: ignore[attr-defined]
    report = format_fit_report(result)  # type: ignore[arg-type]
    assert "stability (8 resamples of the runs): 3 states chosen in" in report


def test_states_forced_onto_noise_are_called_unstable() -> None:
    # Noise: BIC rightly finds one state, in every resample; three states asked for are not.
    assert _fit_with_stability(separation=0.0).stability.share_choosing(1) >= 0.75  # type: ignore[attr-defined]
    result = _fit_with_stability(separation=0.0, n_states=3)
    found = result.stability  # type: ignore[attr-defined]
    unstable = [c for c in result.caveats if c.code is CaveatCode.UNSTABLE]  # type: ignore[attr-defined]
    assert unstable, (found.chosen, found.mean_agreement)
    assert found.mean_agreement < 0.5 or found.share_choosing(result.n_states) < 0.5  # type: ignore[attr-defined]


def test_the_bootstrap_is_seeded_and_the_same_in_parallel() -> None:
    serial = _fit_with_stability(separation=2.0).stability  # type: ignore[attr-defined]
    again = _fit_with_stability(separation=2.0).stability  # type: ignore[attr-defined]
    parallel = _fit_with_stability(separation=2.0, workers=2).stability  # type: ignore[attr-defined]
    assert serial.chosen == again.chosen == parallel.chosen
    np.testing.assert_allclose(serial.agreement, parallel.agreement)


def test_adjusted_rand_index_matches_scikit_learn() -> None:
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 50), rng.integers(0, 3, 50)
        assert adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b))
    same = np.zeros(5, dtype=int)
    assert adjusted_rand(same, same) == adjusted_rand_score(same, same) == 1.0


def test_label_agreement_ignores_names_and_matches_states() -> None:
    reference = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    renamed = np.array([2, 2, 2, 0, 0, 1, 1, 1])
    assert adjusted_rand(reference, renamed) == pytest.approx(1.0)
    np.testing.assert_allclose(matched_shares(reference, renamed, 3), [1.0, 1.0, 1.0])
    one_off = np.array([2, 2, 0, 0, 0, 1, 1, 1])  # a checkpoint of state 0 moved to state 1
    np.testing.assert_allclose(matched_shares(reference, one_off, 3), [2 / 3, 1.0, 1.0])
    assert np.isnan(matched_shares(reference, renamed, 4)[3])  # a state with no checkpoint
