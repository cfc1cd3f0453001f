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
