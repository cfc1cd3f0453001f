"""Cached loaders: run discovery, the store's frames and HMM fits.

Store reads are cached by the database path and ``Store.data_version()`` (bumped by every
results write), so a compute, in this app or in a terminal, shows up on the next rerun. The
store is opened per query and never held (docs/design.md, "Storage").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from dyntools.checkpoints import discover_runs, task_from
from dyntools.checkpoints.step_stats import read_step_stats, step_stats_parts
from dyntools.hmm import FitConfig, FitResult, fit_result_from_json
from dyntools.hookpoints import HookPointTree, build_tree
from dyntools.metrics.kinds import HookKind
from dyntools.metrics.records import Scope
from dyntools.pipeline.fits import (
    FitData,
    ServedFit,
    fit_data,
    fit_or_load,
    name_states,
    stability_or_load,
)
from dyntools.store import Store, locate_db
from dyntools.store.store import NoResultsError
from dyntools.views.activations import histogram_metrics
from dyntools.views.folder import runs_table, scalars_table
from dyntools.views.latent_states.frames import latest_fit

Names = tuple[str, ...] | None


@dataclass(frozen=True)
class LoadedRuns:
    """The runs found under a folder, as tables, plus problems met while reading them."""

    runs: pl.DataFrame
    scalars: pl.DataFrame
    problems: tuple[str, ...]
    paths: dict[str, str] = dataclasses.field(default_factory=dict)  # run id -> its folder


@dataclass(frozen=True)
class StoreState:
    """The database of a folder and its data version (None: nothing computed yet)."""

    path: Path
    version: int | None
    note: str

    @property
    def ready(self) -> bool:
        return self.version is not None

    @property
    def db(self) -> str:
        return str(self.path)


FIT_MEMO_KEY = "dyntools.fit_memo"  # this session's fits, by (db, data version, config)


@st.cache_data(ttl=30, show_spinner="Reading runs...")
def load_runs(folder: str) -> LoadedRuns:
    """Read every run below ``folder`` (cached for 30 s so new checkpoints show up)."""
    discovery = discover_runs(Path(folder))
    problems = tuple(problem.message() for problem in discovery.all_problems())
    return LoadedRuns(
        runs_table(discovery.runs),
        scalars_table(discovery.runs),
        problems,
        {run.run_id: str(run.path) for run in discovery.runs},
    )


@st.cache_data(max_entries=64, show_spinner=False)
def load_step_stats(run_dir: str, stamp: tuple[tuple[str, int, int], ...]) -> pl.DataFrame:
    """A run's per-step activation statistics; ``stamp`` (``step_stats_stamp``) is part of the
    key, so a file that grew is read again."""
    return read_step_stats(run_dir)


def step_stats_stamp(run_dir: str) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of each part of a run's per-step statistics."""
    stamp = []
    for part in step_stats_parts(run_dir):
        with contextlib.suppress(OSError):  # a part removed since it was listed
            info = part.stat()
            stamp.append((part.name, info.st_size, info.st_mtime_ns))
    return tuple(stamp)


@st.cache_data(ttl=30, show_spinner=False)
def load_tree(folder: str, run_id: str) -> HookPointTree:
    """The hook-point tree of a run's first checkpoint."""
    discovery = discover_runs(Path(folder))
    run = discovery.run(run_id)
    if not run.checkpoints:
        raise LookupError(f"run {run_id!r} has no readable checkpoint, so no hook points")
    return build_tree(run.checkpoints[0].tensors)


def store_state(folder: Path) -> StoreState:
    """Where the folder's database is and its data version (not cached: one small query)."""
    location = locate_db(folder)
    store = Store(location.path)
    version: int | None = None
    if store.exists:
        try:
            version = store.data_version()
        except NoResultsError:
            version = None
    return StoreState(location.path, version, location.note)


def _names(values: Names) -> list[str] | None:
    return list(values) if values is not None else None


@st.cache_data(max_entries=64, show_spinner=False)
def load_metrics(
    db: str,
    version: int,
    runs: Names = None,
    hook_points: Names = None,
    metrics: Names = None,
    kind: HookKind | None = None,
) -> pl.DataFrame:
    """Tidy metric values (``Store.read_metrics``); ``version`` is only the cache key."""
    kinds = None if kind is None else [kind]
    return Store(db).read_metrics(_names(runs), _names(hook_points), _names(metrics), kinds)


@st.cache_data(max_entries=32, show_spinner=False)
def load_histograms(
    db: str, version: int, runs: Names = None, hook_points: Names = None
) -> pl.DataFrame:
    return Store(db).read_histograms(_names(runs), _names(hook_points), histogram_metrics())


@st.cache_data(max_entries=16, show_spinner=False)
def load_summary(db: str, version: int) -> pl.DataFrame:
    return Store(db).summary()


@st.cache_data(max_entries=16, show_spinner=False)
def load_errors(db: str, version: int) -> pl.DataFrame:
    return Store(db).read_errors()


@st.cache_data(max_entries=16, show_spinner=False)
def load_metric_index(db: str, version: int) -> pl.DataFrame:
    """Which (run, kind, hook point, metric, params) hold hook-point values: the choices the
    pages offer."""
    return (
        Store(db)
        .read_metrics()
        .filter(pl.col("scope") == Scope.HOOK_POINT)
        .select("run_id", "kind", "hook_point", "metric", "params")
        .unique()
        .sort("run_id", "kind", "hook_point", "metric", "params")
    )


@st.cache_data(max_entries=16, show_spinner=False)
def load_run_tasks(db: str, version: int) -> dict[str, str]:
    """Each stored run's task (from its run.json; ``(layout)`` for other layouts)."""
    runs = Store(db).read_runs()
    return {
        run_id: task_from(json.loads(config or "{}"), layout)
        for run_id, layout, config in runs.select("run_id", "layout", "config_json").iter_rows()
    }


@st.cache_data(max_entries=16, show_spinner=False)
def load_modules(db: str, version: int) -> pl.DataFrame:
    """The modules of every run's rebuilt model, in network order (``Store.read_modules``)."""
    return Store(db).read_modules()


@st.cache_data(max_entries=16, show_spinner=False)
def load_scalar_index(db: str, version: int) -> pl.DataFrame:
    """Which training scalars (run_id, name) the store holds: what a fit can use as features
    (fits read scalars from the store, not from the run folders)."""
    return Store(db).read_scalars().select("run_id", "name").unique().sort("run_id", "name")


@st.cache_data(max_entries=16, show_spinner=False)
def load_first_steps(db: str, version: int) -> dict[str, int]:
    """Each run's first stored checkpoint: what ``cosine_to_init`` compares with."""
    checkpoints = Store(db).read_checkpoints()
    first = checkpoints.group_by("run_id").agg(pl.col("step").min())
    return dict(first.iter_rows())


@st.cache_data(max_entries=4, show_spinner=False)
def load_fit_data(db: str, version: int) -> FitData:
    """The frames every fit reads, and their fingerprint, once per data version."""
    return fit_data(Store(db))


def fit_in_session(db: str, version: int, config: FitConfig) -> bool:
    """Whether this session holds the fit of ``config`` on data version ``version``."""
    memo: dict[tuple[str, int, FitConfig], ServedFit] = st.session_state.get(FIT_MEMO_KEY, {})
    return (db, version, config) in memo


def fit(db: str, version: int, config: FitConfig) -> tuple[ServedFit, bool]:
    """The fit for ``config`` (read back from the store when already made), and whether this
    session already had it. Kept per session so reruns of the page do not read it again."""
    memo: dict[tuple[str, int, FitConfig], ServedFit] = st.session_state.setdefault(
        FIT_MEMO_KEY, {}
    )
    key = (db, version, config)
    if key in memo:
        return memo[key], True
    outcome = fit_or_load(Store(db), config, data=load_fit_data(db, version))
    if len(memo) >= 8:
        memo.pop(next(iter(memo)))
    memo[key] = outcome
    return outcome, False


def load_stability(db: str, version: int, served: ServedFit, resamples: int) -> ServedFit:
    """``served`` with its bootstrap over runs (read back when stored), kept per session like
    ``fit`` so that reruns of the page do not compute it again."""
    memo: dict[tuple[str, int, str, int], ServedFit] = st.session_state.setdefault(
        "dyntools.stability_memo", {}
    )
    key = (db, version, served.config_hash, resamples)
    if key not in memo:
        if len(memo) >= 8:
            memo.pop(next(iter(memo)))
        memo[key] = stability_or_load(
            Store(db),
            served,
            resamples=resamples,
            workers=None,  # one per core (hmm.hmmlearn_backend.default_workers)
            data=load_fit_data(db, version),
        )
        load_fit.clear()  # the stored fit now holds its stability
    return memo[key]


def name_state(db: str, version: int, served: ServedFit, state: int, name: str) -> None:
    """Store a user-given name for a state with the fit, and serve the named fit from now on."""
    named = name_states(Store(db), served, {state: name})
    fits: dict[tuple[str, int, FitConfig], ServedFit] = st.session_state.setdefault(
        "dyntools.fit_memo", {}
    )
    for fit_key in [k for k, v in fits.items() if v.config_hash == served.config_hash]:
        fits[fit_key] = named
    checked: dict[tuple[str, int, str, int], ServedFit] = st.session_state.setdefault(
        "dyntools.stability_memo", {}
    )
    for key in [k for k in checked if k[2] == served.config_hash]:
        checked[key] = dataclasses.replace(
            checked[key], result=checked[key].result.with_state_names({state: name})
        )
    load_fit.clear()


@st.cache_data(max_entries=16, show_spinner=False)
def load_fit(db: str, config_hash: str) -> FitResult | None:
    """A stored fit by the hash of its configuration (None when the store has no such fit)."""
    stored = Store(db).load_fit(config_hash)
    if stored is None:
        return None
    return fit_result_from_json(json.loads(stored.result_json))


def stored_fits(db: str) -> pl.DataFrame:
    """Every stored fit, newest first (``Store.list_fits``; not cached: saving a fit changes
    no data version)."""
    return Store(db).list_fits()


def latest_fit_hash(db: str, runs: tuple[str, ...]) -> str | None:
    """The newest stored fit covering any of ``runs`` (not cached: saving a fit changes no
    data version, and this is one small query)."""
    return latest_fit(Store(db).list_fits(), runs)
