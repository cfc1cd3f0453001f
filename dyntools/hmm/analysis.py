"""The whole latent-state analysis from tidy frames: what ``dyntools fit`` and the app call.

``FitConfig`` is everything that determines a result; ``config_hash`` keys stored fits, so an
identical what-if refit is read back instead of recomputed (the store should fold a
fingerprint of the metrics into ``data_fingerprint``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from dyntools.checkpoints.records import AUTO_AXIS, AXIS_CHOICES, Axis
from dyntools.hmm.attribution import transition_drivers
from dyntools.hmm.caveats import Caveat, CaveatCode, SweepFacts, fit_caveats, stability_caveats
from dyntools.hmm.convergence import ConvergenceAnalysis, convergence_analysis
from dyntools.hmm.estimator import LatentStateModel
from dyntools.hmm.features import FeatureTable, align_scalars, build_feature_table
from dyntools.hmm.graph import TransitionGraph, transition_graph
from dyntools.hmm.hmmlearn_backend import MIN_COVAR, RestartFit, min_rows
from dyntools.hmm.model_selection import SelectionRow, feasible_states
from dyntools.hmm.normalize import Notice
from dyntools.hmm.params import HMMParams
from dyntools.hmm.stability import DEFAULT_RESAMPLES, Stability, stability
from dyntools.metrics.feature import Feature
from dyntools.selection import NetworkSelection

# Bump when a change of the fitting code changes results, so old stored fits are not reused.
# 2: features are ``Feature``s (the paper's are named by their metric).
# Bumped whenever a fit's results change for the same configuration (its hash includes it, so
# a stale stored fit is never served). 3: one time axis per fit. 4: regularized covariances,
# failed restarts with reasons. 5: switch attributions with spreads. 6: caveats, convergence
# significance. 7: normalization statistics from the fitted rows only; held-out checkpoints.
FIT_FORMAT_VERSION = 7
VAL_ACC = "val_acc"


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a fit (defaults are dyntools's, not hmmlearn's)."""

    runs: tuple[str, ...] | None = None  # None: every run, sorted by id
    features: tuple[Feature, ...] = ()  # () with no paper features: every stored feature
    paper_features: bool = False
    # The tensors the paper features were computed over; None: each run's default compute's.
    network_selection: NetworkSelection | None = None
    scalar_features: tuple[str, ...] = ()
    normalize: str = "global"  # docs/latent-states.md: per-run z-scores split phases
    max_states: int = 8
    n_states: int | None = None  # overrides the BIC choice
    restarts: int = 5
    covariance_type: str = "diag"
    # Added to every covariance's diagonal in each EM step, relative to the features' variance.
    min_covar: float = MIN_COVAR
    seed: int = 0
    n_iter: int = 200
    tol: float = 5e-4  # least log-likelihood gain per time step
    heldout_runs: tuple[str, ...] = ()
    # A fraction of each fitted run's checkpoints held out at random (EleutherAI's training
    # maps hold out 0.2), scored like held-out runs.
    heldout_checkpoints: float = 0.0
    criterion: str = "bic"  # how n is chosen: lowest BIC, or highest held-out log-likelihood
    convergence_threshold: float = 0.9
    axis: str = AUTO_AXIS  # step, epoch, or auto: epoch when every checkpoint states one
    data_fingerprint: str = ""  # set by the store: identifies the metric values used

    def __post_init__(self) -> None:
        # NaN passes every comparison's negation: check finiteness first, by name.
        numbers = {"tol": self.tol, "min_covar": self.min_covar}
        for name, value in numbers.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.convergence_threshold) and 0 <= self.convergence_threshold <= 1):
            raise ValueError(
                f"the convergence threshold is a validation accuracy in [0, 1], got "
                f"{self.convergence_threshold!r}"
            )
        if not 0.0 <= self.heldout_checkpoints < 1.0:
            raise ValueError(
                f"heldout_checkpoints is a fraction in [0, 1), got {self.heldout_checkpoints!r}"
            )
        counts = {"max_states": self.max_states, "restarts": self.restarts, "n_iter": self.n_iter}
        for name, count in counts.items():
            if count < 1:
                raise ValueError(f"{name} must be at least 1, got {count}")


@dataclass(frozen=True)
class RestartSummary:
    """One restart as reported (the parameters are kept only for the chosen model)."""

    n_states: int
    seed: int
    log_likelihood: float
    n_iter: int
    converged: bool
    failed: bool


@dataclass(frozen=True)
class FitResult:
    config: FitConfig
    config_hash: str
    columns: tuple[str, ...]
    run_ids: tuple[str, ...]
    lengths: tuple[int, ...]
    steps: np.ndarray
    epochs: np.ndarray  # NaN where the source states no epoch
    axis: Axis  # what durations, first/last times and convergence are measured in
    notices: tuple[Notice, ...]
    selection: tuple[SelectionRow, ...]
    bic_choice: int
    n_states: int
    params: HMMParams
    states: np.ndarray  # Viterbi state per row (relabelled)
    posteriors: np.ndarray  # (n_rows, n_states)
    restarts: tuple[RestartSummary, ...]
    graph: TransitionGraph
    convergence: ConvergenceAnalysis | None  # None when no val_acc was logged
    seconds: float = field(default=0.0, compare=False)
    caveats: tuple[Caveat, ...] = ()  # where the conclusions may mislead (caveats.py)
    fitted: np.ndarray | None = None  # per row: fitted (True) or held out; None: all fitted
    stability: Stability | None = None  # the bootstrap over runs, when it has been run
    # Names users gave the states (stored with the fit, not part of its configuration).
    state_names: tuple[str, ...] = ()

    def state_name(self, state: int) -> str:
        """The name a user gave ``state``, '' if none."""
        return self.state_names[state] if state < len(self.state_names) else ""

    def with_state_names(self, names: Mapping[int, str]) -> FitResult:
        """The same fit with ``names`` given to states (an empty name removes one)."""
        unknown = sorted(s for s in names if not 0 <= s < self.n_states)
        if unknown:
            raise ValueError(
                f"states {unknown} are not in this fit (it has states 0..{self.n_states - 1})"
            )
        current = [self.state_name(s) for s in range(self.n_states)]
        for state, name in names.items():
            current[state] = " ".join(name.split())  # one line, no stray spaces
        return dataclasses.replace(self, state_names=tuple(current))

    @property
    def times(self) -> np.ndarray:
        """Every row's position on the fit's axis (float)."""
        return time_axis(self.axis, self.steps, self.epochs)

    def paths(self) -> dict[str, np.ndarray]:
        """State path of each run."""
        bounds = np.concatenate([[0], np.cumsum(self.lengths)])
        return {run: self.states[bounds[k] : bounds[k + 1]] for k, run in enumerate(self.run_ids)}


def config_json(config: FitConfig) -> dict[str, Any]:
    """The configuration as JSON-able values (features in their text form)."""
    data = asdict(config)
    data["features"] = [feature.format() for feature in config.features]
    selection = config.network_selection
    data["network_selection"] = None if selection is None else selection.describe()
    return data


def config_from_json(data: Mapping[str, Any]) -> FitConfig:
    """The inverse of ``config_json``."""
    tuples = ("runs", "scalar_features", "heldout_runs")
    selection = data.get("network_selection")
    return FitConfig(
        **{
            **data,
            **{k: None if data.get(k) is None else tuple(data[k]) for k in tuples if k in data},
            "features": tuple(Feature.parse(text) for text in data.get("features", ())),
            "network_selection": (
                None if selection is None else NetworkSelection.from_description(selection)
            ),
        }
    )


def config_hash(config: FitConfig) -> str:
    """A stable hex digest of the full configuration (and the fit format version)."""
    payload = {"version": FIT_FORMAT_VERSION, **config_json(config)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def feature_table(
    metrics: pl.DataFrame, scalars: pl.DataFrame | None, config: FitConfig
) -> FeatureTable:
    """The normalized feature table a fit of ``config`` is computed on."""
    return build_feature_table(
        metrics,
        features=list(config.features),
        paper=config.paper_features,
        runs=list(config.runs) if config.runs is not None else None,
        scalars=scalars,
        scalar_features=config.scalar_features,
        normalize=config.normalize,
        heldout_runs=config.heldout_runs,
        heldout_fraction=config.heldout_checkpoints,
        seed=config.seed,
    )


def fit_latent_states(
    metrics: pl.DataFrame,
    scalars: pl.DataFrame | None,
    config: FitConfig,
    *,
    workers: int | None = 1,
) -> FitResult:
    """Feature table -> model selection -> decoding -> graph -> convergence analysis."""
    start = time.perf_counter()
    table = feature_table(metrics, scalars, config)
    model = LatentStateModel(
        max_states=config.max_states,
        n_states=config.n_states,
        restarts=config.restarts,
        covariance_type=config.covariance_type,
        n_iter=config.n_iter,
        tol=config.tol,
        min_covar=config.min_covar,
        random_state=config.seed,
        criterion=config.criterion,
        workers=workers,
    ).fit(table)
    states = model.decoding_.states
    drivers = transition_drivers(model.params_, table.values, table.lengths, states)
    per_row = align_scalars(table, scalars)
    paths = model.decoding_.per_run(table)
    axis = resolve_axis(config.axis, table)
    times = _split(table, time_axis(axis, table.steps, table.epochs))
    per_run_scalars = {name: _split(table, values) for name, values in per_row.items()}
    graph = transition_graph(model.params_, paths, times, drivers, table.columns, per_run_scalars)
    convergence = None
    if VAL_ACC in per_row:
        convergence = convergence_analysis(
            paths,
            times,
            per_run_scalars[VAL_ACC],
            model.n_states_,
            config.convergence_threshold,
            seed=config.seed,
        )
    fitted = [run for run in table.run_ids if run not in config.heldout_runs]
    n_fitted = int(table.fitted_rows.sum())
    d = len(table.columns)
    sweep = SweepFacts(
        rows=model.selection_.rows,
        asked_max_states=model.selection_.asked_max_states,
        feasible=feasible_states(n_fitted, d, config.covariance_type),
        states_needing=min_rows(config.covariance_type, d),
        covariance_type=config.covariance_type,
        chosen=model.n_states_,
        bic_choice=model.selection_.bic_choice,
        n_rows=n_fitted,
        n_features=d,
        n_runs=len(fitted),
    )
    return FitResult(
        config=config,
        config_hash=config_hash(config),
        columns=table.columns,
        run_ids=table.run_ids,
        lengths=table.lengths,
        steps=table.steps,
        epochs=table.epochs,
        axis=axis,
        notices=table.notices,
        selection=model.selection_.rows,
        bic_choice=model.selection_.bic_choice,
        n_states=model.n_states_,
        params=model.params_,
        states=states,
        posteriors=model.decoding_.posteriors,
        restarts=tuple(_summary(o) for o in model.selection_.outcomes),
        graph=graph,
        convergence=convergence,
        seconds=time.perf_counter() - start,
        caveats=fit_caveats(sweep, graph, convergence),
        fitted=table.fitted,
    )


def with_stability(
    result: FitResult,
    table: FeatureTable,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    workers: int | None = 1,
) -> FitResult:
    """``result`` with its bootstrap over runs (``stability.stability``) and the caveats it
    adds; ``table`` is the fit's (``feature_table``)."""
    config = result.config
    found = stability(
        table,
        result.states,
        result.n_states,
        max_states=len(result.selection),
        restarts=config.restarts,
        covariance_type=config.covariance_type,
        n_iter=config.n_iter,
        tol=config.tol,
        min_covar=config.min_covar,
        resamples=resamples,
        seed=config.seed,
        workers=workers,
    )
    kept = tuple(c for c in result.caveats if c.code is not CaveatCode.UNSTABLE)
    caveats = kept + stability_caveats(found, result.n_states)
    return dataclasses.replace(result, stability=found, caveats=caveats)


def _split(table: FeatureTable, values: np.ndarray) -> dict[str, np.ndarray]:
    return {run: values[rows] for run, rows in zip(table.run_ids, table.run_slices(), strict=True)}


def resolve_axis(asked: str, table: FeatureTable) -> Axis:
    """The axis a fit uses: the one asked for, or with ``auto`` the epoch when every checkpoint
    of the table states one, else the step. An epoch axis over a run without epochs is an
    error: a step never stands in for an epoch."""
    if asked not in AXIS_CHOICES:
        raise ValueError(f"unknown axis {asked!r}; choose one of {list(AXIS_CHOICES)}")
    complete = bool(np.isfinite(table.epochs).all())
    if asked == AUTO_AXIS:
        return Axis.EPOCH if complete else Axis.STEP
    if asked == Axis.EPOCH and not complete:
        missing = sorted(set(table.row_runs()[~np.isfinite(table.epochs)]))
        raise ValueError(
            f"runs {missing[:3]} state no epoch for some checkpoints: use the step axis"
        )
    return Axis(asked)


def time_axis(axis: Axis, steps: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """Each row's position on ``axis``."""
    return np.asarray(epochs if axis is Axis.EPOCH else steps, dtype=np.float64)


def _summary(outcome: RestartFit) -> RestartSummary:
    return RestartSummary(
        n_states=outcome.task.n_states,
        seed=outcome.task.seed,
        log_likelihood=outcome.log_likelihood,
        n_iter=outcome.n_iter,
        converged=outcome.converged,
        failed=outcome.params is None,
    )
