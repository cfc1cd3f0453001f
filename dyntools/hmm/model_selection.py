"""Model selection: fit n = 1..K states with several seeded restarts, compare by BIC.

Per n: the best restart (highest log-likelihood among the restarts that did not fail: the
backend fails a restart whose states do not each hold enough checkpoints for their covariance,
so the "best model" really has n states), the mean and standard deviation of the
log-likelihood over restarts, and AIC and BIC of the best restart with hmmlearn's parameter
count and the number of time steps. When every restart of an n fails, its row says why and
the other n still stand. The sweep is clamped to the states the data allow (``feasible_states``).
Optionally each best model also scores held-out runs (the paper's procedure).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from dyntools.hmm.features import FeatureTable
from dyntools.hmm.hmmlearn_backend import (
    MIN_COVAR,
    FitTask,
    RestartFit,
    fit_many,
    log_likelihood,
    min_rows,
    n_parameters,
)
from dyntools.hmm.params import HMMParams

# How n is chosen when the user does not fix it: the lowest BIC on the fitted rows (the paper
# uses held-out runs; EleutherAI held-out checkpoints), or the highest held-out log-likelihood.
CRITERIA = ("bic", "heldout")


@dataclass(frozen=True)
class SelectionRow:
    """The comparison for one number of states."""

    n_states: int
    best_log_likelihood: float
    mean_log_likelihood: float
    std_log_likelihood: float
    n_parameters: int
    aic: float
    bic: float
    heldout_log_likelihood: float | None  # per time step, when held-out runs were given
    restarts: int
    failed: int  # restarts that failed (EM broke down, a state collapsed, ...)
    converged: int  # restarts that converged within the iteration budget
    best_seed: int
    failure: str = ""  # why restarts failed (the most frequent reason), '' if none did


@dataclass(frozen=True)
class Selection:
    """The sweep: one row per n, the fits behind it, and the chosen n."""

    rows: tuple[SelectionRow, ...]
    outcomes: tuple[RestartFit, ...]
    best: dict[int, HMMParams]
    bic_choice: int  # the lowest BIC
    chosen: int  # what the user asked for, else the criterion's choice
    asked_max_states: int  # the sweep asked for, before clamping to ``feasible_states``

    @property
    def max_states(self) -> int:
        return len(self.rows)


def restart_seed(seed: int, n_states: int, restart: int) -> int:
    """The explicit seed of one restart: independent streams per (seed, n, restart)."""
    state = np.random.SeedSequence([seed, n_states, restart]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def select_model(
    table: FeatureTable,
    *,
    max_states: int = 8,
    restarts: int = 5,
    covariance_type: str = "diag",
    seed: int = 0,
    n_iter: int = 200,
    tol: float = 5e-4,
    min_covar: float = MIN_COVAR,
    n_states: int | None = None,
    heldout: FeatureTable | None = None,
    criterion: str = "bic",
    workers: int | None = 1,
) -> Selection:
    """Sweep n = 1..max_states; ``tol`` is the least gain in log-likelihood per time step.

    ``n_states`` overrides the BIC choice (it must be within the sweep).
    """
    if max_states < 1 or restarts < 1 or n_iter < 1:
        raise ValueError(
            f"max_states ({max_states}), restarts ({restarts}) and n_iter ({n_iter}) "
            "must all be at least 1"
        )
    if not (math.isfinite(tol) and tol > 0 and math.isfinite(min_covar) and min_covar > 0):
        raise ValueError(f"tol ({tol}) and min_covar ({min_covar}) must be positive numbers")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {list(CRITERIA)}")
    if criterion == "heldout" and heldout is None:
        raise ValueError("choosing n by held-out log-likelihood needs held-out runs or checkpoints")
    if n_states is not None and not 1 <= n_states <= max_states:
        raise ValueError(f"--states {n_states} is outside the sweep 1..{max_states}")
    feasible = feasible_states(table.n_rows, table.values.shape[1], covariance_type)
    if n_states is not None and n_states > feasible:
        raise ValueError(
            f"{n_states} states need more checkpoints than the {table.n_rows} fitted: "
            f"{_why_feasible(table, covariance_type, feasible)}"
        )
    asked = max_states
    max_states = min(max_states, feasible)
    absolute_tol = tol * table.n_rows
    tasks = [
        FitTask(
            n, restart_seed(seed, n, r), covariance_type, n_iter, absolute_tol, min_covar=min_covar
        )
        for n in range(1, max_states + 1)
        for r in range(restarts)
    ]
    outcomes = fit_many(table.values, table.lengths, tasks, workers=workers)
    rows: list[SelectionRow] = []
    best: dict[int, HMMParams] = {}
    for n in range(1, max_states + 1):
        mine = [o for o in outcomes if o.task.n_states == n]
        row, params = _row(n, mine, table, heldout)
        rows.append(row)
        if params is not None:
            best[n] = params
    usable = [r for r in rows if np.isfinite(r.bic)]
    if not usable:
        reasons = "; ".join(f"{r.n_states} states: {r.failure}" for r in rows[:3])
        raise ValueError(f"every fit failed ({reasons}); try fewer states or features")
    bic_choice = min(usable, key=lambda r: r.bic).n_states
    choice = bic_choice if criterion == "bic" else _heldout_choice(usable)
    chosen = choice if n_states is None else n_states
    if chosen not in best:
        why = rows[chosen - 1].failure
        raise ValueError(
            f"every restart with {chosen} states failed ({why}); choose another number"
        )
    return Selection(tuple(rows), tuple(outcomes), best, bic_choice, chosen, asked)


def _heldout_choice(rows: list[SelectionRow]) -> int:
    scored = [r for r in rows if r.heldout_log_likelihood is not None]
    return max(scored, key=lambda r: r.heldout_log_likelihood or -np.inf).n_states


def feasible_states(n_rows: int, n_features: int, covariance_type: str) -> int:
    """The most states whose covariances ``n_rows`` checkpoints can estimate (each state
    needs ``min_rows`` of them), at least 1."""
    return max(1, n_rows // min_rows(covariance_type, n_features))


def _why_feasible(table: FeatureTable, covariance_type: str, feasible: int) -> str:
    need = min_rows(covariance_type, table.values.shape[1])
    return (
        f"a {covariance_type} covariance over {table.values.shape[1]} features needs {need} "
        f"checkpoints per state, so at most {feasible} states fit"
    )


def _row(
    n: int, outcomes: list[RestartFit], table: FeatureTable, heldout: FeatureTable | None
) -> tuple[SelectionRow, HMMParams | None]:
    good = [o for o in outcomes if o.params is not None]
    k = n_parameters(n, table.values.shape[1], outcomes[0].task.covariance_type)
    errors = Counter(o.error for o in outcomes if o.params is None)
    failure = errors.most_common(1)[0][0] if errors else ""
    if not good:
        nan = float("nan")
        row = SelectionRow(
            n, -np.inf, nan, nan, k, nan, nan, None, len(outcomes), len(outcomes), 0, -1, failure
        )
        return row, None
    winner = max(good, key=lambda o: o.log_likelihood)
    lls = np.array([o.log_likelihood for o in good])
    best_ll = winner.log_likelihood
    heldout_ll = None
    if heldout is not None and winner.params is not None:
        total = log_likelihood(winner.params, heldout.values, heldout.lengths)
        heldout_ll = total / heldout.n_rows
    row = SelectionRow(
        n_states=n,
        best_log_likelihood=best_ll,
        mean_log_likelihood=float(lls.mean()),
        std_log_likelihood=float(lls.std()),
        n_parameters=k,
        aic=-2.0 * best_ll + 2.0 * k,
        bic=-2.0 * best_ll + k * float(np.log(table.n_rows)),
        heldout_log_likelihood=heldout_ll,
        restarts=len(outcomes),
        failed=len(outcomes) - len(good),
        converged=sum(o.converged for o in good),
        best_seed=winner.task.seed,
        failure=failure,
    )
    return row, winner.params
