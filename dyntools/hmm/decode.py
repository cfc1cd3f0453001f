"""Decoding runs with a fitted model, and stable state labels.

hmmlearn numbers states arbitrarily (by the k-means start). States are relabelled by order of
first visit: walking the runs in run order and each run from its first checkpoint, the first
state seen is 0, the next new one 1, ...; states never visited come last, in their old order.
The same data and model then give the same labels (and colours) whatever the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dyntools.hmm.features import FeatureTable
from dyntools.hmm.hmmlearn_backend import posteriors, viterbi
from dyntools.hmm.params import HMMParams


@dataclass(frozen=True)
class Decoding:
    """Viterbi states and smoothed posteriors of every row of a feature table."""

    states: np.ndarray  # (n_rows,) int64
    posteriors: np.ndarray  # (n_rows, n_states)

    def per_run(self, table: FeatureTable) -> dict[str, np.ndarray]:
        """The state path of each run."""
        return {
            run: self.states[rows]
            for run, rows in zip(table.run_ids, table.run_slices(), strict=True)
        }


def first_visit_order(states: np.ndarray, n_states: int) -> np.ndarray:
    """``order[new] = old``: old labels sorted by first appearance, unvisited ones last."""
    seen = list(dict.fromkeys(int(s) for s in states))
    rest = [s for s in range(n_states) if s not in seen]
    return np.array(seen + rest, dtype=np.int64)


def permute(params: HMMParams, order: np.ndarray) -> HMMParams:
    """The same model with state ``order[k]`` renamed ``k``."""
    covars = params.covars
    if params.covariance_type != "tied":  # tied: one matrix shared by all states
        covars = covars[order]
    return HMMParams(
        covariance_type=params.covariance_type,
        startprob=params.startprob[order],
        transmat=params.transmat[np.ix_(order, order)],
        means=params.means[order],
        covars=covars,
    )


def relabel_by_first_visit(params: HMMParams, table: FeatureTable) -> HMMParams:
    """The model with states renumbered by order of first visit in ``table``'s runs."""
    path = viterbi(params, table.values, table.lengths)
    return permute(params, first_visit_order(path, params.n_states))


def decode(params: HMMParams, table: FeatureTable) -> Decoding:
    """Viterbi path and posteriors, each run decoded as its own sequence."""
    return Decoding(
        states=viterbi(params, table.values, table.lengths),
        posteriors=posteriors(params, table.values, table.lengths),
    )
