"""Convergence analysis (from the paper): which states go with slow convergence.

- Where a run converged: the position on the fit's axis (step or epoch) of its first
  checkpoint whose validation accuracy reaches the threshold.
- Visit counts: checkpoints spent in each state over the whole run. (Counting only the
  checkpoints before convergence would make R^2 trivially ~1 with one checkpoint per epoch:
  those counts sum to the convergence epoch.) With runs of equal length the counts sum to a
  constant, so the coefficients are the least-norm solution: compare them with each other.
- A linear regression (with intercept, least squares) of convergence epoch on the visit
  counts, its R^2, the adjusted R^2 (which charges for the regressors: with as many unknowns as
  runs the R^2 is 1 by construction) and a permutation p-value: the share of ``PERMUTATIONS``
  seeded shuffles of the convergence times across runs whose R^2 reaches the observed one (a
  forced fit gives p = 1).
- Detour states: states that only some of the converged runs visit, where the runs that visit
  them converge later on average than those that do not. A candidate is a detour only when at
  least two runs visit it and the difference survives a permutation test (shuffling which runs
  converged when, p <= ``ALPHA``); otherwise the report says there are not enough runs to tell.
Runs that never reach the threshold are listed and left out of the regression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 1000
ALPHA = 0.05


@dataclass(frozen=True)
class DetourState:
    """A state visited by some runs only, whose visitors converged later than the others; a
    detour when the difference is supported (``supported``)."""

    state: int
    runs_visiting: int
    mean_visiting: float  # where the runs that visit it converged, on average
    mean_not_visiting: float
    # Share of shuffles of the convergence times with a difference at least as large; None with
    # fewer than two visiting runs (one run's idiosyncrasy cannot be told from a phase).
    p_value: float | None = None

    @property
    def supported(self) -> bool:
        return self.p_value is not None and self.p_value <= ALPHA


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
    detours: tuple[DetourState, ...]  # candidates; ``supported`` ones are detours
    # R^2 charged for the regressors; None when there are no more runs than unknowns.
    adjusted_r_squared: float | None = None
    p_value: float | None = None  # of the R^2, by permutation; None without an R^2
    regressors: int = 0  # independent columns of the design (visit counts), intercept aside

    @property
    def forced(self) -> bool:
        """Whether the R^2 is 1 by construction: no more converged runs than unknowns."""
        return len(self.converged_at) <= self.regressors + 1


def convergence_analysis(
    paths: Mapping[str, np.ndarray],
    times: Mapping[str, np.ndarray],
    val_acc: Mapping[str, np.ndarray],
    n_states: int,
    threshold: float = 0.9,
    *,
    seed: int = 0,
) -> ConvergenceAnalysis:
    """Analyse runs given their state path, time and validation accuracy per checkpoint.

    ``val_acc`` may hold NaN where a checkpoint has no accuracy; such checkpoints never count
    as converged. ``seed`` seeds the permutation tests.
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
    rng = np.random.default_rng(seed)
    regression = _regression(converged, counts, n_states, rng)
    return ConvergenceAnalysis(
        threshold=threshold,
        converged_at=converged,
        not_converged=tuple(never),
        visit_counts=counts,
        coefficients=regression.coefficients,
        intercept=regression.intercept,
        r_squared=regression.r_squared,
        detours=_detours(converged, counts, n_states, rng),
        adjusted_r_squared=regression.adjusted,
        p_value=regression.p_value,
        regressors=regression.regressors,
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


@dataclass(frozen=True)
class _Regression:
    coefficients: tuple[float, ...]
    intercept: float
    r_squared: float | None
    adjusted: float | None
    p_value: float | None
    regressors: int


def _regression(
    converged: dict[str, float],
    counts: dict[str, tuple[int, ...]],
    n_states: int,
    rng: np.random.Generator,
) -> _Regression:
    runs = list(converged)
    design = np.array([counts[r] for r in runs], dtype=np.float64).reshape(len(runs), n_states)
    with_intercept = np.column_stack([np.ones(len(runs)), design])
    regressors = int(np.linalg.matrix_rank(with_intercept)) - 1 if runs else 0
    if len(runs) < 2:
        return _Regression(tuple([math.nan] * n_states), math.nan, None, None, None, regressors)
    target = np.array([converged[r] for r in runs])
    beta, r2 = r_squared(design, target)
    adjusted = p_value = None
    if r2 is not None:
        spare = len(runs) - regressors - 1
        adjusted = 1.0 - (1.0 - r2) * (len(runs) - 1) / spare if spare > 0 else None
        shuffled = np.stack([rng.permutation(target) for _ in range(PERMUTATIONS)], axis=1)
        reached = _r_squared_columns(with_intercept, shuffled) >= r2 - 1e-12
        p_value = (1.0 + float(reached.sum())) / (1.0 + PERMUTATIONS)
    coefficients = tuple(float(b) for b in beta[1:])
    return _Regression(coefficients, float(beta[0]), r2, adjusted, p_value, regressors)


def _r_squared_columns(design: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """R^2 of the least-squares fit of each column of ``targets`` on ``design`` (one solve)."""
    fitted = design @ np.linalg.lstsq(design, targets, rcond=None)[0]
    centred = targets - targets.mean(axis=0)
    total = (centred**2).sum(axis=0)
    residual = ((targets - fitted) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - residual / total, 0.0)


def _detours(
    converged: dict[str, float],
    counts: dict[str, tuple[int, ...]],
    n_states: int,
    rng: np.random.Generator,
) -> tuple[DetourState, ...]:
    runs: Sequence[str] = list(converged)
    when = np.array([converged[r] for r in runs])
    shuffled = np.stack([rng.permutation(when) for _ in range(PERMUTATIONS)])
    found = []
    for state in range(n_states):
        visits = np.array([counts[r][state] > 0 for r in runs])
        if not visits.any() or visits.all():
            continue
        late, early = float(when[visits].mean()), float(when[~visits].mean())
        if late <= early:
            continue
        p_value = None
        if visits.sum() >= 2:
            differences = shuffled[:, visits].mean(axis=1) - shuffled[:, ~visits].mean(axis=1)
            reached = differences >= (late - early) - 1e-12
            p_value = (1.0 + float(reached.sum())) / (1.0 + PERMUTATIONS)
        found.append(DetourState(state, int(visits.sum()), late, early, p_value))
    return tuple(found)
