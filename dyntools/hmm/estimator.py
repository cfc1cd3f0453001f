"""``LatentStateModel``: model selection + stable labels behind a scikit-learn-style estimator."""

from __future__ import annotations

import numpy as np

from dyntools.hmm.decode import Decoding, decode, relabel_by_first_visit
from dyntools.hmm.features import FeatureTable
from dyntools.hmm.hmmlearn_backend import COVARIANCE_TYPES, MIN_COVAR
from dyntools.hmm.model_selection import Selection, select_model
from dyntools.hmm.params import HMMParams


class LatentStateModel:
    """Gaussian HMM over training runs, its number of states chosen by BIC.

    Parameters follow scikit-learn conventions (stored as given, validated in ``fit``);
    fitted attributes end in ``_``: ``selection_``, ``n_states_``, ``params_`` (states
    relabelled by order of first visit), ``decoding_`` (of the fitted table). The model is
    fitted on the table's fitted rows; its held-out rows (runs, or random checkpoints) are
    scored. ``criterion`` chooses n: ``bic`` (lowest BIC) or ``heldout`` (highest held-out
    log-likelihood per time step).
    ``tol`` is the least gain in log-likelihood per time step that keeps EM going;
    ``min_covar`` is added to every covariance's diagonal in each EM step, relative to the
    features' mean variance.
    """

    def __init__(
        self,
        max_states: int = 8,
        n_states: int | None = None,
        restarts: int = 5,
        covariance_type: str = "diag",
        n_iter: int = 200,
        tol: float = 5e-4,
        min_covar: float = MIN_COVAR,
        random_state: int = 0,
        criterion: str = "bic",
        workers: int | None = 1,
    ) -> None:
        self.max_states = max_states
        self.n_states = n_states
        self.restarts = restarts
        self.covariance_type = covariance_type
        self.n_iter = n_iter
        self.tol = tol
        self.min_covar = min_covar
        self.random_state = random_state
        self.criterion = criterion
        self.workers = workers

    def fit(self, table: FeatureTable) -> LatentStateModel:
        """Sweep the numbers of states on ``table`` (minus held-out runs) and keep the choice."""
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"unknown covariance type {self.covariance_type!r}; "
                f"choose one of {COVARIANCE_TYPES}"
            )
        if not isinstance(self.random_state, int | np.integer):
            raise ValueError(f"random_state must be an int seed, got {self.random_state!r}")
        fitted = table.fitted_rows
        if not fitted.any():
            raise ValueError("every run is held out: keep at least one run to fit on")
        train = table.take(fitted) if table.held_out else table
        test = table.take(~fitted) if table.held_out else None
        self.selection_: Selection = select_model(
            train,
            max_states=self.max_states,
            restarts=self.restarts,
            covariance_type=self.covariance_type,
            seed=int(self.random_state),
            n_iter=self.n_iter,
            tol=self.tol,
            min_covar=self.min_covar,
            n_states=self.n_states,
            heldout=test,
            criterion=self.criterion,
            workers=self.workers,
        )
        self.n_states_: int = self.selection_.chosen
        # Labels follow the first visits in the whole table, held-out rows included.
        self.params_: HMMParams = relabel_by_first_visit(
            self.selection_.best[self.n_states_], table
        )
        self.decoding_: Decoding = decode(self.params_, table)
        return self

    def predict(self, table: FeatureTable) -> np.ndarray:
        """Viterbi state of every row of ``table``."""
        return decode(self._fitted(), table).states

    def predict_proba(self, table: FeatureTable) -> np.ndarray:
        """Posterior state probabilities of every row of ``table``."""
        return decode(self._fitted(), table).posteriors

    def _fitted(self) -> HMMParams:
        if not hasattr(self, "params_"):
            raise RuntimeError("LatentStateModel is not fitted yet: call fit(table) first")
        return self.params_
