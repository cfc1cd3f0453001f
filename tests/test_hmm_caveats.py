"""Caveats: a fit says where its conclusions may mislead (CLI, JSON and app show them)."""

from __future__ import annotations

import json

import numpy as np
from hmm_fixtures import small_runs

from dyntools.hmm import FitConfig, fit_latent_states, fit_result_from_json, fit_result_to_json
from dyntools.hmm.caveats import CaveatCode, plural
from dyntools.hmm.report import format_fit_report


def _codes(result: object) -> set[CaveatCode]:
    return {caveat.code for caveat in result.caveats}  # type: ignore[attr-defined]


def test_a_sweep_too_short_for_the_phases_is_at_its_edge() -> None:
    runs = small_runs()  # 3 regimes
    result = fit_latent_states(runs.metrics, runs.scalars, FitConfig(max_states=2, restarts=2))
    assert result.bic_choice == 2
    (edge,) = [c for c in result.caveats if c.code is CaveatCode.EDGE]
    assert "largest number of states tried (2)" in edge.message
    assert "raise max_states" in edge.message
    assert f"warning: {edge.message}" in format_fit_report(result)


def test_clamped_sweep_many_parameters_and_a_forced_regression() -> None:
    runs = small_runs()
    one = runs.metrics.filter(runs.metrics["run_id"] == "run-00")
    config = FitConfig(max_states=50, restarts=1, covariance_type="full")
    result = fit_latent_states(one, runs.scalars, config)
    codes = _codes(result)
    assert CaveatCode.CLAMPED in codes  # 90 checkpoints, 7 per state: at most 12 states
    (clamped,) = [c for c in result.caveats if c.code is CaveatCode.CLAMPED]
    assert "max_states 50 lowered to 12" in clamped.message
    if result.n_states > 2:  # a full covariance over 6 features: 27 parameters per state
        assert CaveatCode.PARAMETERS in codes
    # One run: one converged run cannot be regressed at all (no R^2, no caveat about it).
    assert result.convergence is not None and result.convergence.r_squared is None
    assert CaveatCode.FORCED_REGRESSION not in codes
    three = runs.metrics.filter(runs.metrics["run_id"].is_in(["run-00", "run-01", "run-02"]))
    result = fit_latent_states(three, runs.scalars, FitConfig(max_states=3, restarts=2))
    assert result.convergence is not None and result.convergence.forced
    assert CaveatCode.FORCED_REGRESSION in _codes(result)


def test_a_state_of_one_run_is_named() -> None:
    runs = small_runs()
    # run-00 alone gets an extra, far-away stretch: a state nobody else visits.
    shifted = runs.metrics.with_columns(
        value=np.where(
            (runs.metrics["run_id"] == "run-00") & (runs.metrics["step"] >= 700),
            runs.metrics["value"] + 8.0,
            runs.metrics["value"],
        )
    )
    result = fit_latent_states(shifted, runs.scalars, FitConfig(max_states=5, restarts=3))
    lonely = [c for c in result.caveats if c.code is CaveatCode.ONE_RUN_STATE]
    assert lonely, result.caveats
    assert all("visited by one run only" in c.message for c in lonely)


def test_caveats_survive_the_store_round_trip() -> None:
    runs = small_runs()
    result = fit_latent_states(runs.metrics, runs.scalars, FitConfig(max_states=2, restarts=1))
    assert result.caveats
    back = fit_result_from_json(json.loads(json.dumps(fit_result_to_json(result))))
    assert back.caveats == result.caveats


def test_plural() -> None:
    assert (plural(1, "run"), plural(2, "run"), plural(0, "time")) == ("1 run", "2 runs", "0 times")
