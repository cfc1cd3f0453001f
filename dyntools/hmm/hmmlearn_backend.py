"""The only module that imports hmmlearn: fit, score and decode Gaussian HMMs.

Everything else in dyntools sees plain parameters (``HMMParams``), so hmmlearn (in
limited-maintenance mode) can be replaced here alone. What this module adds to hmmlearn:

- an explicit seed per restart, used for the k-means start (one k-means run per restart, so
  restarts really differ; hmmlearn's own start runs k-means 10 times, which makes restarts
  nearly identical and costs as much as several EM iterations), and a "sticky" start for the
  transition matrix (hmmlearn starts uniform);
- ``implementation="scaling"`` (2-3x faster than "log", same fixed point; see the tests);
- an honest convergence flag (hmmlearn's ``monitor_.converged`` is also true when the
  iteration budget ran out);
- covariances regularized in every M-step (``min_covar``, relative to the data's variance,
  added to the diagonal, as scikit-learn's ``reg_covar``; hmmlearn applies its ``min_covar``
  only to the start), so that ``full`` and ``tied`` stay positive-definite on collinear
  features;
- failed fits reported with their reason, not raised: EM breaking down (a state that loses
  all its mass gives NaN parameters), a covariance that is not positive-definite, or a state
  holding fewer checkpoints than its covariance needs (it collapses onto them and the
  likelihood diverges: such a restart would otherwise win every comparison);
- restarts in parallel processes with BLAS/OpenMP limited to one thread per fit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from dyntools.hmm.params import HMMParams
from dyntools.processes import die_with_parent

if TYPE_CHECKING:
    from hmmlearn import hmm

T = TypeVar("T")
R = TypeVar("R")

# hmmlearn, scikit-learn and threadpoolctl are imported where a model is built, not here: they
# take about 1.5 s to import, and the app's pages import this module (for HMMParams) on every
# server's first render, also when they only read fits back from the store.

COVARIANCE_TYPES: tuple[str, ...] = ("diag", "full", "spherical", "tied")
# Added to every covariance's diagonal in each M-step, as a fraction of the data's mean variance
# (1 for z-scored features): hmmlearn's min_covar default, applied throughout.
MIN_COVAR = 1e-3
# Start transition matrices "sticky": training phases last many checkpoints. Measured on the
# benchmark data: 20 % fewer EM iterations than hmmlearn's uniform start, the same BIC choice.
START_SELF_TRANSITION = 0.9


@dataclass(frozen=True)
class FitTask:
    """One restart: how many states, which seed, and the EM settings."""

    n_states: int
    seed: int
    covariance_type: str = "diag"
    n_iter: int = 200
    tol: float = 1.0  # absolute gain in total log-likelihood, as hmmlearn's ``tol``
    implementation: str = "scaling"
    min_covar: float = MIN_COVAR  # relative to the data's mean variance


@dataclass(frozen=True)
class RestartFit:
    """The result of one restart; ``params`` is None when the fit failed."""

    task: FitTask
    params: HMMParams | None
    log_likelihood: float  # of the data the model was fitted on; -inf when failed
    n_iter: int  # EM iterations run
    converged: bool  # gain below tol before the budget ran out
    state_counts: tuple[int, ...]  # Viterbi occupancy of each state on the fit data
    error: str = ""


def n_parameters(n_states: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of a Gaussian HMM, counted as hmmlearn counts them for its BIC."""
    n, d = n_states, n_features
    covariance = {
        "spherical": n,
        "diag": n * d,
        "full": n * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
    }
    if covariance_type not in covariance:
        raise ValueError(f"unknown covariance type {covariance_type!r}; use {COVARIANCE_TYPES}")
    return (n - 1) + n * (n - 1) + n * d + covariance[covariance_type]


def min_rows(covariance_type: str, n_features: int) -> int:
    """The fewest checkpoints a state needs for its own covariance to be estimated: d + 1 for a
    full matrix, 2 for variances; 1 for a tied covariance (estimated over every state)."""
    return {"full": n_features + 1, "diag": 2, "spherical": 2, "tied": 1}[covariance_type]


def fit_one(values: np.ndarray, lengths: Sequence[int], task: FitTask) -> RestartFit:
    """Fit one restart on stacked runs (``lengths`` = rows per run, never concatenated)."""
    if task.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"unknown covariance type {task.covariance_type!r}; use one of {COVARIANCE_TYPES}"
        )
    if not task.min_covar > 0:
        raise ValueError(f"min_covar must be > 0, got {task.min_covar!r}")
    from hmmlearn import hmm

    model = hmm.GaussianHMM(n_components=task.n_states)  # replaced below; keeps monitor_
    with _quiet():
        try:
            model = _initial_model(values, task)
            model.fit(values, lengths=np.asarray(lengths))
            params = _params_of(model)
            if not _finite(params):
                raise FloatingPointError("EM produced non-finite parameters")
            _check_covariances(params)
            log_likelihood = float(model.score(values, lengths=np.asarray(lengths)))
            _, path = model.decode(values, lengths=np.asarray(lengths))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
            # A state that lost all its mass makes hmmlearn divide by zero: a failed restart.
            return RestartFit(task, None, -np.inf, model.monitor_.iter, False, (), str(error))
    history = list(model.monitor_.history)
    converged = len(history) >= 2 and history[-1] - history[-2] < task.tol
    counts = np.bincount(path, minlength=task.n_states)
    needed = min_rows(task.covariance_type, values.shape[1])
    thin = [k for k, c in enumerate(counts) if c < needed]
    if thin:
        k = thin[0]
        why = (
            f"state {k} holds {counts[k]} checkpoint{'s' if counts[k] != 1 else ''}, fewer "
            f"than the {needed} a {task.covariance_type} covariance over "
            f"{values.shape[1]} features needs: it collapses onto them (the likelihood diverges)"
        )
        return RestartFit(task, None, -np.inf, int(model.monitor_.iter), False, (), why)
    return RestartFit(
        task=task,
        params=params,
        log_likelihood=log_likelihood,
        n_iter=int(model.monitor_.iter),
        converged=bool(converged),
        state_counts=tuple(int(c) for c in counts),
    )


def fit_many(
    values: np.ndarray, lengths: Sequence[int], tasks: Sequence[FitTask], workers: int | None = 1
) -> list[RestartFit]:
    """Fit every task, in ``workers`` worker processes (1: here; None: ``default_workers``),
    results in task order."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(tasks) <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return [fit_one(values, lengths, task) for task in tasks]
    # Largest models first, so that no worker is left with a slow fit at the end.
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].n_states)
    executor = _executor(workers)
    futures = {i: executor.submit(fit_one, values, list(lengths), tasks[i]) for i in order}
    return [futures[i].result() for i in range(len(tasks))]


def parallel_map(
    function: Callable[[T], R], items: Sequence[T], workers: int | None = 1
) -> list[R]:
    """``function`` over ``items`` in ``workers`` worker processes (1: here, with one BLAS
    thread; None: ``default_workers``), results in order; ``function`` must be a module-level
    function."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return [function(item) for item in items]
    executor = _executor(workers)
    return list(executor.map(function, items))


def log_likelihood(params: HMMParams, values: np.ndarray, lengths: Sequence[int]) -> float:
    """Total log-likelihood of runs under a fitted model."""
    return float(_scored(params, lambda model: model.score(values, lengths=np.asarray(lengths))))


def viterbi(params: HMMParams, values: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """The most likely state of every row, each run decoded on its own."""
    with _quiet():
        _, path = _model_of(params).decode(values, lengths=np.asarray(lengths))
    return np.asarray(path, dtype=np.int64)


def posteriors(params: HMMParams, values: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Smoothed posterior p(state | whole run) of every row, shape (n_rows, n_states)."""
    return np.asarray(
        _scored(params, lambda model: model.predict_proba(values, lengths=np.asarray(lengths)))
    )


def _scored(params: HMMParams, score: Callable[[hmm.GaussianHMM], Any]) -> Any:
    """``score(model)`` with the fast scaled forward pass, else in the log domain: rows far
    from every state (a held-out run unlike the fitted ones) underflow the scaled pass, which
    hmmlearn reports as a ValueError."""
    with _quiet():
        try:
            return score(_model_of(params))
        except ValueError as error:
            if "underflow" not in str(error):
                raise
            return score(_model_of(params, implementation="log"))


def _initial_model(values: np.ndarray, task: FitTask) -> hmm.GaussianHMM:
    from sklearn.cluster import KMeans

    n = task.n_states
    d = values.shape[1]
    ridge = task.min_covar * float(np.mean(np.var(values, axis=0))) if values.size else 0.0
    model = _regularized_class()(
        ridge=max(ridge, np.finfo(np.float64).tiny),
        n_components=n,
        covariance_type=task.covariance_type,
        n_iter=task.n_iter,
        tol=task.tol,
        random_state=task.seed,
        implementation=task.implementation,
        init_params="",
        # No prior: maximum likelihood plus the ridge (hmmlearn's default prior adds 0.01 to
        # every entry of a full covariance, which regularizes nothing).
        covars_prior=0.0,
        covars_weight=0.0,
    )
    # hmmlearn's start, except one k-means run seeded by the restart.
    kmeans = KMeans(n_clusters=n, n_init=1, random_state=task.seed).fit(values)
    cov = np.atleast_2d(np.cov(values.T)) + ridge * np.eye(d)
    model.startprob_ = np.full(n, 1.0 / n)
    model.transmat_ = _sticky_transmat(n)
    model.means_ = kmeans.cluster_centers_
    starts: dict[str, np.ndarray] = {
        "spherical": np.full(n, cov.mean()),
        "diag": np.tile(np.diag(cov), (n, 1)),
        "full": np.tile(cov, (n, 1, 1)),
        "tied": cov,
    }
    model.covars_ = starts[task.covariance_type]
    return model


@functools.cache
def _regularized_class() -> type[hmm.GaussianHMM]:
    """GaussianHMM whose M-step adds ``ridge`` to every covariance's diagonal (built on first
    use: hmmlearn is imported lazily)."""
    from hmmlearn import hmm

    class RegularizedGaussianHMM(hmm.GaussianHMM):  # type: ignore[misc]
        _covars_: np.ndarray

        def __init__(self, ridge: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ridge = ridge

        def _do_mstep(self, stats: dict[str, Any]) -> None:
            super()._do_mstep(stats)
            if "c" not in self.params:
                return
            covars = self._covars_
            if self.covariance_type in ("full", "tied"):
                d = covars.shape[-1]
                symmetric = 0.5 * (covars + np.swapaxes(covars, -1, -2))
                self._covars_ = symmetric + self.ridge * np.eye(d)
            else:
                self._covars_ = covars + self.ridge

    return RegularizedGaussianHMM


def _check_covariances(params: HMMParams) -> None:
    """Raise LinAlgError naming the first state whose covariance is not positive-definite."""
    for k, covariance in enumerate(params.full_covariances()):
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise np.linalg.LinAlgError(
                f"the covariance of state {k} is not positive-definite"
            ) from None


def _sticky_transmat(n: int) -> np.ndarray:
    if n == 1:
        return np.ones((1, 1))
    transmat = np.full((n, n), (1.0 - START_SELF_TRANSITION) / (n - 1))
    np.fill_diagonal(transmat, START_SELF_TRANSITION)
    return transmat


def _model_of(params: HMMParams, implementation: str = "scaling") -> hmm.GaussianHMM:
    from hmmlearn import hmm

    model = hmm.GaussianHMM(
        n_components=params.n_states,
        covariance_type=params.covariance_type,
        implementation=implementation,
        init_params="",
    )
    model.startprob_ = params.startprob
    model.transmat_ = params.transmat
    model.means_ = params.means
    model.covars_ = params.covars
    model.n_features = params.n_features
    return model


def _params_of(model: hmm.GaussianHMM) -> HMMParams:
    return HMMParams(
        covariance_type=str(model.covariance_type),
        startprob=np.array(model.startprob_, dtype=np.float64),
        transmat=np.array(model.transmat_, dtype=np.float64),
        means=np.array(model.means_, dtype=np.float64),
        covars=np.array(model._covars_, dtype=np.float64),
    )


def _finite(params: HMMParams) -> bool:
    arrays = (params.startprob, params.transmat, params.means, params.covars)
    return all(bool(np.isfinite(a).all()) for a in arrays)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence hmmlearn's log warnings and numpy's divide warnings: failures are returned."""
    logger = logging.getLogger("hmmlearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # Divide-by-zero and k-means convergence warnings: a bad restart is reported as
            # failed (or its log-likelihood shows it), not printed.
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


_EXECUTORS: dict[int, ProcessPoolExecutor] = {}


def _executor(workers: int) -> ProcessPoolExecutor:
    """A pool kept for the life of the process: live refits must not pay its start again."""
    if workers not in _EXECUTORS:
        # forkserver, not fork: the app has threads, and forking a threaded process can hang.
        context = multiprocessing.get_context("forkserver")
        # The fitting libraries too, so that every worker forks with them already imported.
        context.set_forkserver_preload(
            [__name__, "dyntools.hmm.stability", "hmmlearn.hmm", "sklearn.cluster"]
        )
        _EXECUTORS[workers] = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_one_thread_per_worker
        )
    return _EXECUTORS[workers]


_LIMITS: list[object] = []


def _one_thread_per_worker() -> None:
    die_with_parent()
    # Small matrices: BLAS threads only fight over the cores the other workers use.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))


def default_workers() -> int:
    """Worker processes to use: one per available core, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))
