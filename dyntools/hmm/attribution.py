"""Which features drive a transition i -> j (docs/latent-states.md, docs/design.md "Hidden Markov model"), in plain numpy.

(a) ``mu_j - mu_i``: the difference of the state means, in standard units (the features are
z-scored), ranked by magnitude.

(b) The gradient of the filtered log-posterior of the target state with respect to the
current observation,

    d log p(z_t = j | x_1..t) / d x_t = P_j (mu_j - x_t) - sum_l p_t(l) P_l (mu_l - x_t),

with ``P_l`` the precision (inverse covariance) of state l and ``p_t`` the filtered (forward)
posterior, averaged over the observed i -> j switches. It follows from
``p_t(j) ∝ [sum_i p_{t-1}(i) A_ij] N(x_t; mu_j, Sigma_j)``, where only the Gaussian depends on
``x_t``. The published code summed the second term over all axes (a scalar); here it is a
vector, one entry per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dyntools.hmm.params import HMMParams


@dataclass(frozen=True)
class EdgeDrivers:
    """The features behind one observed transition, one entry per feature column."""

    source: int
    target: int
    n_switches: int
    mean_difference: np.ndarray  # mu_target - mu_source
    gradient: np.ndarray  # averaged d log p(target | x_1..t) / d x_t at the switches


def emission_log_density(params: HMMParams, values: np.ndarray) -> np.ndarray:
    """log N(x_t; mu_l, Sigma_l) for every row and state, shape (n_rows, n_states)."""
    covs = params.full_covariances()
    d = params.n_features
    out = np.empty((values.shape[0], params.n_states))
    for state in range(params.n_states):
        chol = np.linalg.cholesky(covs[state])
        centred = np.linalg.solve(chol, (values - params.means[state]).T)
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        out[:, state] = -0.5 * (d * np.log(2 * np.pi) + log_det + (centred**2).sum(axis=0))
    return out


def filtered_posteriors(
    params: HMMParams, values: np.ndarray, lengths: Sequence[int]
) -> np.ndarray:
    """p(z_t | x_1..t) of every row (forward algorithm, each run on its own)."""
    log_b = emission_log_density(params, values)
    log_a = np.log(np.maximum(params.transmat, 1e-300))
    log_pi = np.log(np.maximum(params.startprob, 1e-300))
    out = np.empty_like(log_b)
    start = 0
    for length in lengths:
        prev = None
        for t in range(start, start + length):
            if prev is None:
                log_alpha = log_pi + log_b[t]
            else:
                log_alpha = np.logaddexp.reduce(prev[:, None] + log_a, axis=0) + log_b[t]
            log_alpha -= np.logaddexp.reduce(log_alpha)
            out[t] = np.exp(log_alpha)
            prev = log_alpha
        start += length
    return out


def posterior_gradient(
    params: HMMParams, x: np.ndarray, filtered: np.ndarray, precisions: np.ndarray | None = None
) -> np.ndarray:
    """d log p(z_t = j | x_1..t) / d x_t for every target j, shape (n_states, d)."""
    if precisions is None:
        precisions = np.linalg.inv(params.full_covariances())
    pulls = np.einsum("lab,lb->la", precisions, params.means - x)  # P_l (mu_l - x)
    return np.asarray(pulls - filtered @ pulls)


def transition_drivers(
    params: HMMParams, values: np.ndarray, lengths: Sequence[int], states: np.ndarray
) -> dict[tuple[int, int], EdgeDrivers]:
    """Drivers of every transition i -> j (i != j) seen in the decoded ``states``."""
    filtered = filtered_posteriors(params, values, lengths)
    precisions = np.linalg.inv(params.full_covariances())
    sums: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[tuple[int, int], int] = {}
    start = 0
    for length in lengths:
        for t in range(start + 1, start + length):
            edge = (int(states[t - 1]), int(states[t]))
            if edge[0] == edge[1]:
                continue
            grad = posterior_gradient(params, values[t], filtered[t], precisions)[edge[1]]
            sums[edge] = sums.get(edge, 0.0) + grad
            counts[edge] = counts.get(edge, 0) + 1
        start += length
    return {
        edge: EdgeDrivers(
            source=edge[0],
            target=edge[1],
            n_switches=counts[edge],
            mean_difference=params.means[edge[1]] - params.means[edge[0]],
            gradient=sums[edge] / counts[edge],
        )
        for edge in sorted(sums)
    }


def rank_features(
    scores: np.ndarray, columns: Sequence[str], top: int = 5
) -> tuple[tuple[str, float], ...]:
    """The ``top`` features by magnitude of their score, signed scores kept."""
    order = np.argsort(-np.abs(scores), kind="stable")[:top]
    return tuple((columns[k], float(scores[k])) for k in order)
