"""The fitted parameters of a Gaussian HMM, as plain arrays (no hmmlearn object).

Every module of dyntools.hmm except the backend sees only this record, so the library that fits
the model (hmmlearn, in limited-maintenance mode) can be replaced in one module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HMMParams:
    """A fitted Gaussian HMM; ``covars`` in hmmlearn's per-type shape."""

    covariance_type: str
    startprob: np.ndarray  # (n,)
    transmat: np.ndarray  # (n, n)
    means: np.ndarray  # (n, d)
    covars: np.ndarray  # diag (n, d) | spherical (n,) | full (n, d, d) | tied (d, d)

    @property
    def n_states(self) -> int:
        return int(self.startprob.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def full_covariances(self) -> np.ndarray:
        """Covariance matrices of every state, shape (n_states, d, d), whatever the type."""
        n, d, covars = self.n_states, self.n_features, self.covars
        full = {
            "full": lambda: covars,
            "tied": lambda: np.broadcast_to(covars, (n, d, d)).copy(),
            "diag": lambda: np.stack([np.diag(c) for c in covars]),
            "spherical": lambda: np.stack([np.eye(d) * c for c in covars]),
        }
        return np.asarray(full[self.covariance_type]())
