"""Which features drive a transition i -> j (docs/latent-states.md, "Reading the report", its
Transitions paragraph), in plain numpy.

(a) ``mu_j - mu_i``: the difference of the state means, in standard units (the features are
z-scored), ranked by magnitude.

(b) The switch gradient: at the last checkpoint t still in state i before each observed switch
to j (the published reference's point: the filtered posterior there still favours i, so the
gradient is informative; at the first checkpoint in j it is ~1 and the gradient ~0), the
gradient of the filtered log-odds of j against i with respect to x_t,

    d [log p(z_t = j | x_1..t) - log p(z_t = i | x_1..t)] / d x_t
        = P_j (mu_j - x_t) - P_i (mu_i - x_t),

with ``P_l`` the precision (inverse covariance) of state l. The predictive factor
``sum_k p_{t-1}(k) A_kl`` and the normalizer do not depend on x_t, so the log-odds gradient is
the difference of the two states' pulls and never saturates. It is averaged over the observed
i -> j switches, with its spread (standard deviation over switches), per feature: how far moving
each feature (in standard units) at the switch moves the log-odds towards j.

``posterior_gradient`` (d log p(z_t = j | x_1..t) / d x_t for every j) is the filtered
posterior's own gradient; it saturates once the posterior is sure, which is why (b) uses the
log-odds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dyntools.hmm.params import HMMParams
from dyntools.text import printable


@dataclass(frozen=True)
class EdgeDrivers:
    """The features behind one observed transition, one entry per feature column."""

    source: int
    target: int
    n_switches: int
    mean_difference: np.ndarray  # mu_target - mu_source
    gradient: np.ndarray  # the switch gradient of the log-odds, averaged over the switches
    gradient_spread: np.ndarray  # its standard deviation over the switches (NaN for one)


class Driver(NamedTuple):
    """A feature ranked as a driver of a transition: its score and the score's spread over the
    switches (NaN where the score has none, such as a difference of state means)."""

    feature: str
    value: float
    spread: float = math.nan

    def text(self) -> str:
        """``feature +0.36`` or, with a spread, ``feature +0.36 ±0.05``."""
        spread = f" ±{self.spread:.2g}" if math.isfinite(self.spread) else ""
        return f"{printable(self.feature)} {self.value:+.3g}{spread}"


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


def posterior_gradient(
    params: HMMParams, x: np.ndarray, filtered: np.ndarray, precisions: np.ndarray | None = None
) -> np.ndarray:
    """d log p(z_t = j | x_1..t) / d x_t for every target j, shape (n_states, d)."""
    if precisions is None:
        precisions = np.linalg.inv(params.full_covariances())
    pulls = np.einsum("lab,lb->la", precisions, params.means - x)  # P_l (mu_l - x)
    return np.asarray(pulls - filtered @ pulls)


def log_odds_gradient(
    params: HMMParams, x: np.ndarray, source: int, target: int, precisions: np.ndarray | None = None
) -> np.ndarray:
    """d [log p(z_t = target | x_1..t) - log p(z_t = source | x_1..t)] / d x_t, shape (d,)."""
    if precisions is None:
        precisions = np.linalg.inv(params.full_covariances())
    pull_target = precisions[target] @ (params.means[target] - x)
    pull_source = precisions[source] @ (params.means[source] - x)
    return np.asarray(pull_target - pull_source)


def transition_drivers(
    params: HMMParams, values: np.ndarray, lengths: Sequence[int], states: np.ndarray
) -> dict[tuple[int, int], EdgeDrivers]:
    """Drivers of every transition i -> j (i != j) seen in the decoded ``states``, evaluated at
    the last checkpoint of i before each switch."""
    precisions = np.linalg.inv(params.full_covariances())
    gradients: dict[tuple[int, int], list[np.ndarray]] = {}
    start = 0
    for length in lengths:
        for t in range(start + 1, start + length):
            edge = (int(states[t - 1]), int(states[t]))
            if edge[0] == edge[1]:
                continue
            gradient = log_odds_gradient(params, values[t - 1], *edge, precisions=precisions)
            gradients.setdefault(edge, []).append(gradient)
        start += length
    return {
        edge: EdgeDrivers(
            source=edge[0],
            target=edge[1],
            n_switches=len(found),
            mean_difference=params.means[edge[1]] - params.means[edge[0]],
            gradient=np.mean(found, axis=0),
            gradient_spread=np.std(found, axis=0)
            if len(found) > 1
            else np.full(values.shape[1], math.nan),
        )
        for edge, found in sorted(gradients.items())
    }


def rank_features(
    scores: np.ndarray,
    columns: Sequence[str],
    top: int = 5,
    spreads: np.ndarray | None = None,
) -> tuple[Driver, ...]:
    """The ``top`` features by magnitude of their score, signed scores (and spreads) kept."""
    order = np.argsort(-np.abs(scores), kind="stable")[:top]
    return tuple(
        Driver(columns[k], float(scores[k]), math.nan if spreads is None else float(spreads[k]))
        for k in order
    )
