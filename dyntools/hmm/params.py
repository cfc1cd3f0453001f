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
