from __future__ import annotations

import numpy as np
import pytest

from dyntools.hmm.convergence import convergence_analysis


def test_hand_made_example() -> None:
    # Run c takes a detour through state 2 and converges late; d never converges.
    paths = {
        "a": np.array([0, 0, 1, 1, 1, 1]),
        "b": np.array([0, 0, 0, 1, 1, 1]),
        "c": np.array([0, 2, 2, 0, 1, 1]),
        "d": np.array([0, 0, 0, 0, 0, 0]),
    }
    acc = {
        "a": np.array([0.1, 0.2, 0.5, 0.95, 0.97, 0.99]),
        "b": np.array([0.1, 0.2, 0.3, 0.6, 0.92, 0.99]),
        "c": np.array([0.1, np.nan, 0.2, 0.3, 0.5, 0.91]),
        "d": np.array([0.1] * 6),
    }
    epochs = {run: np.arange(6) * 10.0 for run in paths}
    result = convergence_analysis(paths, epochs, acc, n_states=3, threshold=0.9)
    assert result.converged_at == {"a": 30.0, "b": 40.0, "c": 50.0}
    assert result.not_converged == ("d",)
    assert result.visit_counts["c"] == (2, 2, 2)
    design = np.array([[1, 2, 4, 0], [1, 3, 3, 0], [1, 2, 2, 2]], dtype=float)
    target = np.array([30.0, 40.0, 50.0])
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    fitted = design @ beta
    expected = 1 - ((target - fitted) ** 2).sum() / ((target - target.mean()) ** 2).sum()
    assert result.r_squared == pytest.approx(expected)
    assert result.intercept == pytest.approx(beta[0])
    np.testing.assert_allclose(result.coefficients, beta[1:])
    (detour,) = result.detours
    assert detour.state == 2 and detour.runs_visiting == 1
    assert detour.mean_visiting == 50.0 and detour.mean_not_visiting == 35.0
    # One visiting run cannot be told from that run's idiosyncrasy.
    assert detour.p_value is None and not detour.supported
    # 3 runs, 3 unknowns (visit counts sum to 6, so two independent columns): forced.
    assert result.regressors == 2 and result.forced
    assert result.adjusted_r_squared is None


def test_r_squared_on_a_noisy_line_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    n_runs = 12
    paths, acc, epochs = {}, {}, {}
    for r in range(n_runs):
        detour = int(rng.integers(0, 20))
        path = np.array([0] * 10 + [1] * detour + [2] * (40 - detour))
        conv = 10 + detour + int(rng.integers(0, 3))
        paths[f"r{r}"] = path
        acc[f"r{r}"] = (np.arange(50) >= conv).astype(float)
        epochs[f"r{r}"] = np.arange(50, dtype=float)
    result = convergence_analysis(paths, epochs, acc, n_states=3)
    x = np.array([result.visit_counts[f"r{r}"][1] for r in range(n_runs)], dtype=float)
    y = np.array([result.converged_at[f"r{r}"] for r in range(n_runs)])
    expected = np.corrcoef(x, y)[0, 1] ** 2  # one free regressor: R^2 = r^2
    assert result.r_squared == pytest.approx(expected)


def test_fewer_than_two_converged_runs_gives_no_regression() -> None:
    paths = {"a": np.array([0, 1])}
    result = convergence_analysis(paths, {"a": np.array([0.0, 1.0])}, {"a": np.array([0, 1.0])}, 2)
    assert result.r_squared is None and result.converged_at == {"a": 1.0}


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 accuracies for 2 checkpoints"):
        convergence_analysis(
            {"a": np.array([0, 1])}, {"a": np.array([0, 1])}, {"a": np.zeros(3)}, 2
        )


def _line_runs(n_runs: int, related: bool, seed: int) -> tuple[dict, dict, dict]:
    """Runs with a detour of random length; convergence follows it (``related``) or not."""
    rng = np.random.default_rng(seed)
    paths, acc, epochs = {}, {}, {}
    for r in range(n_runs):
        detour = int(rng.integers(0, 20))
        path = np.array([0] * 10 + [1] * detour + [2] * (40 - detour))
        conv = 10 + (detour if related else int(rng.integers(0, 20))) + int(rng.integers(0, 3))
        paths[f"r{r}"], epochs[f"r{r}"] = path, np.arange(50, dtype=float)
        acc[f"r{r}"] = (np.arange(50) >= conv).astype(float)
    return paths, epochs, acc


def test_adjusted_r_squared_and_a_real_association_is_significant() -> None:
    paths, epochs, acc = _line_runs(12, related=True, seed=0)
    result = convergence_analysis(paths, epochs, acc, n_states=3, seed=1)
    assert result.regressors == 1  # counts of states 1 and 2 sum to 40: one free column
    n, p = 12, 1
    expected = 1 - (1 - result.r_squared) * (n - 1) / (n - p - 1)  # type: ignore[operator]
    assert result.adjusted_r_squared == pytest.approx(expected)
    assert result.p_value is not None and result.p_value < 0.01
    assert not result.forced


def test_permutation_p_values_are_uniform_under_the_null() -> None:
    p_values = []
    for seed in range(200):
        paths, epochs, acc = _line_runs(10, related=False, seed=100 + seed)
        p = convergence_analysis(paths, epochs, acc, n_states=3, seed=seed).p_value
        assert p is not None
        p_values.append(p)
    values = np.array(p_values)
    # Under the null the p-value is uniform: about 5% below 0.05, a mean near 1/2.
    assert 0.01 <= (values < 0.05).mean() <= 0.11
    assert 0.4 <= values.mean() <= 0.6


def test_a_detour_needs_two_runs_and_a_permutation_test() -> None:
    rng = np.random.default_rng(5)
    paths, acc, epochs = {}, {}, {}
    for r in range(10):
        visits = r < 5  # half the runs take a detour through state 2 and converge 20 later
        path = np.array([0] * 10 + ([2] * 10 if visits else []) + [1] * (40 - 10 * visits))
        conv = 20 + (20 if visits else 0) + int(rng.integers(0, 3))
        paths[f"r{r}"], epochs[f"r{r}"] = path, np.arange(path.size, dtype=float)
        acc[f"r{r}"] = (np.arange(path.size) >= conv).astype(float)
    result = convergence_analysis(paths, epochs, acc, n_states=3, seed=0)
    (detour,) = result.detours
    assert detour.state == 2 and detour.runs_visiting == 5
    assert detour.p_value is not None and detour.p_value < 0.05 and detour.supported
    # The same with the convergence times shuffled: later on average by chance, unsupported.
    shuffled = dict(zip(acc, rng.permutation(list(acc.values())), strict=True))
    for candidate in convergence_analysis(paths, epochs, shuffled, n_states=3, seed=0).detours:
        assert candidate.p_value is None or candidate.p_value > 0.01
