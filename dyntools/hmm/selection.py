"""Model selection: fit n = 1..K states with several seeded restarts, compare by BIC.

Per n: the best restart (highest log-likelihood among restarts whose decoded paths use every
state, so the "best model" really has n states), the mean and standard deviation of the
log-likelihood over restarts, and AIC and BIC of the best restart with hmmlearn's parameter
count and the number of time steps. Optionally each best model also scores held-out runs
(the paper's procedure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dyntools.hmm.features import FeatureTable
from dyntools.hmm.hmmlearn_backend import (
    FitTask,
    RestartFit,
    fit_many,
    log_likelihood,
    n_parameters,
)
from dyntools.hmm.params import HMMParams


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
    failed: int  # restarts whose EM broke down
    converged: int  # restarts that converged within the iteration budget
    best_seed: int
    best_uses_all_states: bool


@dataclass(frozen=True)
class Selection:
    """The sweep: one row per n, the fits behind it, and the chosen n."""

    rows: tuple[SelectionRow, ...]
    outcomes: tuple[RestartFit, ...]
    best: dict[int, HMMParams]
    bic_choice: int  # the lowest BIC
    chosen: int  # what the user asked for, else bic_choice


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
    n_states: int | None = None,
    heldout: FeatureTable | None = None,
    n_jobs: int = 1,
) -> Selection:
    """Sweep n = 1..max_states; ``tol`` is the least gain in log-likelihood per time step.

    ``n_states`` overrides the BIC choice (it must be within the sweep).
    """
    if max_states < 1 or restarts < 1 or n_iter < 1:
        raise ValueError(
            f"max_states ({max_states}), restarts ({restarts}) and n_iter ({n_iter}) "
            "must all be at least 1"
        )
    if n_states is not None and not 1 <= n_states <= max_states:
        raise ValueError(f"--states {n_states} is outside the sweep 1..{max_states}")
    if max_states > table.n_rows:
        raise ValueError(f"max_states {max_states} exceeds the {table.n_rows} time steps; lower it")
    absolute_tol = tol * table.n_rows
    tasks = [
        FitTask(n, restart_seed(seed, n, r), covariance_type, n_iter, absolute_tol)
        for n in range(1, max_states + 1)
        for r in range(restarts)
    ]
    outcomes = fit_many(table.values, table.lengths, tasks, n_jobs=n_jobs)
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
        errors = {o.error for o in outcomes if o.error}
        raise ValueError(f"every fit failed ({sorted(errors)[:3]}); try fewer states or features")
    bic_choice = min(usable, key=lambda r: r.bic).n_states
    chosen = bic_choice if n_states is None else n_states
    if chosen not in best:
        raise ValueError(f"every restart with {chosen} states failed; choose another number")
    return Selection(tuple(rows), tuple(outcomes), best, bic_choice, chosen)


def _row(
    n: int, outcomes: list[RestartFit], table: FeatureTable, heldout: FeatureTable | None
) -> tuple[SelectionRow, HMMParams | None]:
    good = [o for o in outcomes if o.params is not None]
    k = n_parameters(n, table.values.shape[1], outcomes[0].task.covariance_type)
    if not good:
        nan = float("nan")
        row = SelectionRow(
            n, -np.inf, nan, nan, k, nan, nan, None, len(outcomes), len(outcomes), 0, -1, False
        )
        return row, None
    full = [o for o in good if all(c > 0 for c in o.state_counts)]
    winner = max(full or good, key=lambda o: o.log_likelihood)
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
        best_uses_all_states=bool(full),
    )
    return row, winner.params
