from __future__ import annotations

import numpy as np
import pytest
from hmm_fixtures import small_runs, small_table
from sklearn.metrics import adjusted_rand_score

from dyntools.hmm.estimator import LatentStateModel
from dyntools.hmm.features import build_feature_table
from dyntools.hmm.model_selection import restart_seed, select_model


@pytest.mark.parametrize("normalize", ["per-run", "global"])
def test_known_regimes_are_recovered_and_bic_picks_their_number(normalize: str) -> None:
    from dyntools.hmm.features import build_feature_table

    runs = small_runs()
    table = build_feature_table(runs.metrics, normalize=normalize)
    model = LatentStateModel(max_states=5, restarts=3, random_state=0).fit(table)
    assert model.selection_.bic_choice == 3 and model.n_states_ == 3
    truth = np.concatenate([runs.states[r] for r in table.run_ids])
    assert adjusted_rand_score(truth, model.decoding_.states) >= 0.9


def test_selection_table() -> None:
    table = small_table()
    selection = select_model(table, max_states=4, restarts=3, seed=1)
    assert [r.n_states for r in selection.rows] == [1, 2, 3, 4]
    for row in selection.rows:
        mine = [o for o in selection.outcomes if o.task.n_states == row.n_states]
        lls = np.array([o.log_likelihood for o in mine])
        assert row.mean_log_likelihood == pytest.approx(lls.mean())
        assert row.std_log_likelihood == pytest.approx(lls.std())
        assert row.best_log_likelihood <= lls.max()
        assert row.bic == pytest.approx(
            -2 * row.best_log_likelihood + row.n_parameters * np.log(table.n_rows)
        )
        assert row.aic == pytest.approx(-2 * row.best_log_likelihood + 2 * row.n_parameters)
    seeds = [o.task.seed for o in selection.outcomes]
    assert len(set(seeds)) == len(seeds)  # every restart has its own explicit seed
    assert seeds[0] == restart_seed(1, 1, 0)


def test_override_and_heldout_scoring() -> None:
    runs = small_runs()
    last = small_table().run_ids[-1]
    table = build_feature_table(runs.metrics, heldout_runs=[last])
    model = LatentStateModel(max_states=4, n_states=2, restarts=2).fit(table)
    assert model.n_states_ == 2 and model.selection_.bic_choice == 3
    scores = [r.heldout_log_likelihood for r in model.selection_.rows]
    assert all(s is not None and np.isfinite(s) for s in scores)
    assert model.predict(table).shape == (table.n_rows,)  # held-out runs decoded too
    with pytest.raises(ValueError, match="outside the sweep"):
        LatentStateModel(max_states=3, n_states=4).fit(table)
    with pytest.raises(ValueError, match="every run is held out"):
        build_feature_table(runs.metrics, heldout_runs=table.run_ids)


def test_heldout_rows_never_reach_the_normalization_of_the_fitted_ones() -> None:
    runs = small_runs()
    others = list(small_table().run_ids[:-1])
    alone = build_feature_table(runs.metrics, runs=others)
    with_held = build_feature_table(runs.metrics, heldout_runs=[small_table().run_ids[-1]])
    np.testing.assert_allclose(with_held.take(with_held.fitted_rows).values, alone.values)
    for normalize in ("global", "per-run"):
        table = build_feature_table(runs.metrics, normalize=normalize, heldout_fraction=0.2, seed=3)
        fitted = table.fitted_rows
        for rows in table.run_slices():  # 20 % of every run held out, at least 2 kept
            assert (~fitted[rows]).sum() == round(0.2 * (rows.stop - rows.start))
        reference = table.values[fitted] if normalize == "global" else None
        if reference is not None:  # the fitted rows alone are standardized
            np.testing.assert_allclose(reference.mean(axis=0), 0.0, atol=1e-12)
            np.testing.assert_allclose(reference.std(axis=0), 1.0, atol=1e-12)
        else:
            for rows in table.run_slices():
                block = table.values[rows][fitted[rows]]
                np.testing.assert_allclose(block.mean(axis=0), 0.0, atol=1e-12)


def test_heldout_checkpoints_can_choose_n() -> None:
    runs = small_runs()
    table = build_feature_table(runs.metrics, heldout_fraction=0.2, seed=1)
    model = LatentStateModel(max_states=5, restarts=2, criterion="heldout").fit(table)
    rows = model.selection_.rows
    best = max(rows, key=lambda r: r.heldout_log_likelihood or -np.inf)
    assert model.n_states_ == best.n_states
    assert model.decoding_.states.shape == (table.n_rows,)  # held-out rows decoded too
    with pytest.raises(ValueError, match="needs held-out runs or checkpoints"):
        LatentStateModel(max_states=3, criterion="heldout").fit(small_table())


def test_same_seed_same_fit() -> None:
    table = small_table()
    a = LatentStateModel(max_states=3, restarts=2, random_state=5).fit(table)
    b = LatentStateModel(max_states=3, restarts=2, random_state=5).fit(table)
    assert a.selection_.rows == b.selection_.rows
    np.testing.assert_array_equal(a.params_.means, b.params_.means)
    np.testing.assert_array_equal(a.decoding_.states, b.decoding_.states)
