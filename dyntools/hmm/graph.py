"""Fitted HMM + decoded paths -> the transition graph the app draws and the CLI prints.

Nodes are states (occupancy, how many runs start there, a summary of the training scalars
while in the state so it can be read as "memorizing", "generalizing", ...); edges are the
transitions observed in the decoded paths, with their ``transmat`` probability and the
features that drive them (``dyntools.hmm.attribution``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dyntools.hmm.attribution import Driver, EdgeDrivers, rank_features
from dyntools.hmm.params import HMMParams


@dataclass(frozen=True)
class StateNode:
    """One latent state."""

    state: int
    checkpoints: int
    occupancy: float  # share of all checkpoints
    runs_visiting: int
    initial_runs: int  # runs whose first checkpoint is in this state
    # Earliest / mean / latest position of its checkpoints on the fit's axis (step or epoch).
    first_time: float
    mean_time: float
    last_time: float
    spent_per_run: float  # mean time (steps or epochs) spent in the state by its visitors
    scalar_means: dict[str, float]  # e.g. train_loss, val_acc while in the state

    @property
    def initial(self) -> bool:
        return self.initial_runs > 0


@dataclass(frozen=True)
class TransitionEdge:
    """An observed transition (or a self-loop, without drivers)."""

    source: int
    target: int
    count: int  # times it happens in the decoded paths
    probability: float  # transmat_[source, target]
    top_mean_difference: tuple[Driver, ...]  # mu_target - mu_source, standard units
    top_gradient: tuple[Driver, ...]  # the switch log-odds gradient, mean and spread


@dataclass(frozen=True)
class TransitionGraph:
    nodes: tuple[StateNode, ...]
    edges: tuple[TransitionEdge, ...]


def transition_graph(
    params: HMMParams,
    paths: Mapping[str, np.ndarray],
    times: Mapping[str, np.ndarray],
    drivers: Mapping[tuple[int, int], EdgeDrivers],
    columns: Sequence[str],
    scalars: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    *,
    top: int = 5,
    self_loops: bool = False,
) -> TransitionGraph:
    """Build the graph from per-run paths, times (on the fit's axis) and scalars per run.

    ``scalars`` maps a scalar name to {run id: value per checkpoint}.
    """
    all_states = np.concatenate(list(paths.values()))
    all_times = np.concatenate([np.asarray(times[r], dtype=np.float64) for r in paths])
    durations = np.concatenate([_durations(np.asarray(times[r], dtype=np.float64)) for r in paths])
    total = max(1, all_states.size)
    nodes = []
    for state in range(params.n_states):
        here = all_states == state
        state_times = all_times[here]
        known = state_times[np.isfinite(state_times)]
        visitors = sum(bool((p == state).any()) for p in paths.values())
        spent = float(np.nansum(durations[here]) / visitors) if visitors else 0.0
        means: dict[str, float] = {}
        for name, per_run in (scalars or {}).items():
            values = np.concatenate([np.asarray(per_run[r], dtype=np.float64) for r in paths])
            picked = values[here]
            picked = picked[np.isfinite(picked)]
            means[name] = float(picked.mean()) if picked.size else float("nan")
        nodes.append(
            StateNode(
                state=state,
                checkpoints=int(here.sum()),
                occupancy=float(here.sum() / total),
                runs_visiting=visitors,
                initial_runs=sum(int(p[0] == state) for p in paths.values() if p.size),
                first_time=float(known.min()) if known.size else float("nan"),
                mean_time=float(known.mean()) if known.size else float("nan"),
                last_time=float(known.max()) if known.size else float("nan"),
                spent_per_run=spent,
                scalar_means=means,
            )
        )
    counts: dict[tuple[int, int], int] = {}
    for path in paths.values():
        for a, b in itertools.pairwise(path):
            if a != b or self_loops:
                counts[(int(a), int(b))] = counts.get((int(a), int(b)), 0) + 1
    edges = []
    for (a, b), count in sorted(counts.items()):
        driver = drivers.get((a, b))
        edges.append(
            TransitionEdge(
                source=a,
                target=b,
                count=count,
                probability=float(params.transmat[a, b]),
                top_mean_difference=(
                    rank_features(driver.mean_difference, columns, top) if driver else ()
                ),
                top_gradient=(
                    rank_features(driver.gradient, columns, top, driver.gradient_spread)
                    if driver
                    else ()
                ),
            )
        )
    return TransitionGraph(tuple(nodes), tuple(edges))


def _durations(times: np.ndarray) -> np.ndarray:
    """Time each checkpoint stands for: up to the next one (the last one: the previous gap).

    Checkpoints are ordered by step, so on either axis the gaps are never negative; a source
    whose epochs go backwards counts no time there rather than negative time."""
    if times.size < 2:
        return np.ones_like(times)
    gaps = np.maximum(np.diff(times), 0.0)
    return np.concatenate([gaps, gaps[-1:]])
