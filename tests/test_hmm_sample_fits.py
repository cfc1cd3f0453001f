"""Fits of the committed sample runs that a researcher can trust. Every covariance type fits or
says why: covariances are regularized in every EM step, restarts that collapse a state onto too
few checkpoints fail with their reason, and the sweep is clamped to the states the data can
estimate. Every observed transition is explained by a driver of a clearly non-zero size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_RUNS
from hmm_fixtures import small_table

from dyntools.hmm import COVARIANCE_TYPES, FitConfig
from dyntools.hmm.hmmlearn_backend import FitTask, fit_one, min_rows
from dyntools.hmm.model_selection import feasible_states, select_model
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.fits import fit_or_load
from dyntools.store import Store

MODULAR = SAMPLE_RUNS / "modular-addition"


@pytest.fixture(scope="module")
def modular_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    db = tmp_path_factory.mktemp("covariances") / "db.duckdb"
    assert compute(MODULAR, ComputeOptions(workers=1), db=db).failed == ()
    return Store(db)


@pytest.mark.parametrize("covariance", COVARIANCE_TYPES)
def test_every_covariance_type_fits_the_sample_runs(modular_store: Store, covariance: str) -> None:
    config = FitConfig(paper_features=True, covariance_type=covariance, restarts=2)
    result = fit_or_load(modular_store, config).result
    d = len(result.columns)
    for k, matrix in enumerate(result.params.full_covariances()):
        assert np.allclose(matrix, matrix.T), k
        assert np.linalg.eigvalsh(matrix).min() > 0, k  # positive-definite
    rows = {row.n_states: row for row in result.selection}
    assert math.isfinite(rows[result.n_states].bic)
    feasible = feasible_states(sum(result.lengths), d, covariance)
    assert len(result.selection) == min(config.max_states, feasible)
    for row in result.selection:
        if row.failed:
            assert row.failure, row  # a failed restart always says why
        if row.failed == row.restarts:
            assert not math.isfinite(row.bic)
    # Each state of the chosen model holds enough checkpoints for its covariance.
    counts = np.bincount(result.states, minlength=result.n_states)
    assert counts.min() >= min_rows(covariance, d) or covariance == "tied"


def test_a_state_collapsing_onto_few_checkpoints_fails_with_its_reason() -> None:
    table = small_table()
    d = table.values.shape[1]
    # 18 rows of 6 features: a full covariance needs 7 per state, so 3 states cannot fit.
    values, lengths = table.values[:18], [18]
    outcome = fit_one(values, lengths, FitTask(3, 0, "full"))
    assert outcome.params is None and outcome.log_likelihood == -np.inf
    assert f"fewer than the {d + 1} a full covariance over {d} features needs" in outcome.error
    assert "collapses" in outcome.error


def test_the_sweep_is_clamped_to_what_the_data_allow() -> None:
    table = small_table().subset(small_table().run_ids[:1])  # one run of 90 checkpoints
    selection = select_model(table, max_states=20, restarts=1, covariance_type="full")
    d = table.values.shape[1]
    assert selection.asked_max_states == 20
    assert selection.max_states == table.n_rows // (d + 1) == 12
    with pytest.raises(ValueError, match="at most 12 states fit"):
        select_model(table, max_states=20, n_states=13, restarts=1, covariance_type="full")


@pytest.mark.parametrize(
    ("field", "value"),
    [("tol", math.nan), ("min_covar", 0.0), ("convergence_threshold", math.nan), ("restarts", 0)],
)
def test_nonsense_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        FitConfig(**{field: value})  # type: ignore[arg-type]


def test_the_cli_refuses_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dyntools.cli import main

    assert main(["fit", str(tmp_path), "--tol", "nan"]) != 0
    assert "tol must be a positive number" in capsys.readouterr().err


def test_every_transition_has_a_driver_that_explains_it(modular_store: Store) -> None:
    result = fit_or_load(modular_store, FitConfig(paper_features=True, restarts=3)).result
    switches = [edge for edge in result.graph.edges if edge.source != edge.target]
    assert switches, "the sample runs change state"
    for edge in switches:
        top = edge.top_gradient[0]
        assert abs(top.value) >= 0.1, (edge.source, edge.target, edge.top_gradient)
