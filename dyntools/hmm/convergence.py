"""Convergence analysis (from the paper): which states go with slow convergence.

- Where a run converged: the position on the fit's axis (step or epoch) of its first
  checkpoint whose validation accuracy reaches the threshold.
- Visit counts: checkpoints spent in each state over the whole run. (Counting only the
  checkpoints before convergence would make R^2 trivially ~1 with one checkpoint per epoch:
  those counts sum to the convergence epoch.) With runs of equal length the counts sum to a
  constant, so the coefficients are the least-norm solution: compare them with each other.
- A linear regression (with intercept, least squares) of convergence epoch on the visit
  counts, and its R^2.
- Detour states: states that only some of the converged runs visit, where the runs that visit
  them converge later on average than those that do not.
Runs that never reach the threshold are listed and left out of the regression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetourState:
    """A state visited by some runs only, with the convergence of visitors and the others."""

    state: int
    runs_visiting: int
    mean_visiting: float  # where the runs that visit it converged, on average
    mean_not_visiting: float


@dataclass(frozen=True)
class ConvergenceAnalysis:
    """Where runs converged, visit counts, the regression and the detour states."""

    threshold: float
    converged_at: dict[str, float]  # converged runs only, on the fit's axis
    not_converged: tuple[str, ...]
    visit_counts: dict[str, tuple[int, ...]]  # per converged run, one count per state
    coefficients: tuple[float, ...]  # per state (time per checkpoint spent in it)
    intercept: float
    r_squared: float | None  # None when fewer than 2 converged runs or no spread
    detours: tuple[DetourState, ...]


def convergence_analysis(
    paths: Mapping[str, np.ndarray],
    times: Mapping[str, np.ndarray],
    val_acc: Mapping[str, np.ndarray],
    n_states: int,
    threshold: float = 0.9,
) -> ConvergenceAnalysis:
    """Analyse runs given their state path, time and validation accuracy per checkpoint.

    ``val_acc`` may hold NaN where a checkpoint has no accuracy; such checkpoints never count
    as converged.
    """
    converged: dict[str, float] = {}
    counts: dict[str, tuple[int, ...]] = {}
    never: list[str] = []
    for run, path in paths.items():
        if run not in val_acc or run not in times:
            raise LookupError(f"run {run!r} has no validation accuracy; log val_acc to analyse it")
        acc = np.asarray(val_acc[run], dtype=np.float64)
        if acc.shape != path.shape:
            raise ValueError(
                f"run {run!r}: {acc.size} accuracies for {path.size} checkpoints; they must match"
            )
        reached = np.flatnonzero(np.nan_to_num(acc, nan=-np.inf) >= threshold)
        if reached.size == 0:
            never.append(run)
            continue
        first = int(reached[0])
        converged[run] = float(times[run][first])
        counts[run] = tuple(int(c) for c in np.bincount(path, minlength=n_states))
    coefficients, intercept, r_squared = _regression(converged, counts, n_states)
    return ConvergenceAnalysis(
        threshold=threshold,
        converged_at=converged,
        not_converged=tuple(never),
        visit_counts=counts,
        coefficients=coefficients,
        intercept=intercept,
        r_squared=r_squared,
        detours=_detours(converged, counts, n_states),
    )


def r_squared(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Least-squares fit of ``target`` on ``design`` (an intercept column added) and its R^2."""
    with_intercept = np.column_stack([np.ones(len(target)), design])
    beta, *_ = np.linalg.lstsq(with_intercept, target, rcond=None)
    total = float(((target - target.mean()) ** 2).sum())
    if total == 0.0:
        return beta, None
    residual = float(((target - with_intercept @ beta) ** 2).sum())
    return beta, 1.0 - residual / total


def _regression(
    converged: dict[str, float], counts: dict[str, tuple[int, ...]], n_states: int
) -> tuple[tuple[float, ...], float, float | None]:
    runs = list(converged)
    if len(runs) < 2:
        return tuple([float("nan")] * n_states), float("nan"), None
    design = np.array([counts[r] for r in runs], dtype=np.float64)
    target = np.array([converged[r] for r in runs])
    beta, r2 = r_squared(design, target)
    return tuple(float(b) for b in beta[1:]), float(beta[0]), r2


def _detours(
    converged: dict[str, float], counts: dict[str, tuple[int, ...]], n_states: int
) -> tuple[DetourState, ...]:
    runs: Sequence[str] = list(converged)
    found = []
    for state in range(n_states):
        visiting = [r for r in runs if counts[r][state] > 0]
        others = [r for r in runs if counts[r][state] == 0]
        if not visiting or not others:
            continue
        late = float(np.mean([converged[r] for r in visiting]))
        early = float(np.mean([converged[r] for r in others]))
        if late > early:
            found.append(DetourState(state, len(visiting), late, early))
    return tuple(found)
