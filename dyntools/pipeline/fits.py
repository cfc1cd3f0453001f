"""Latent-state fits from the store: read the feature frames, fit or read back a stored fit.

Ties ``dyntools.store`` (the numbers) to ``dyntools.hmm`` (the model); neither knows the other.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dyntools.hmm import (
    FitConfig,
    FitResult,
    Notice,
    config_hash,
    fit_latent_states,
    fit_result_from_json,
    fit_result_to_json,
)
from dyntools.hmm.analysis import config_json, feature_table, with_stability
from dyntools.hmm.stability import DEFAULT_RESAMPLES
from dyntools.metrics.records import Scope
from dyntools.selection import NetworkSelection
from dyntools.store import Store


@dataclass(frozen=True)
class ServedFit:
    """A fit, whether it was read back from the store, and how long getting it took."""

    result: FitResult
    config: FitConfig
    config_hash: str
    from_store: bool
    seconds: float


def fit_document(served: ServedFit, *, from_store: bool | None = None) -> dict[str, Any]:
    """The fit as the JSON document ``dyntools fit --json`` prints (and the app downloads):
    the result, its configuration hash and whether the fit was read back from the store
    (``from_store``: of the fit itself, when ``served`` is a later step such as its
    stability)."""
    document = fit_result_to_json(served.result)
    document["config_hash"] = served.config_hash
    document["from_store"] = served.from_store if from_store is None else from_store
    return document


@dataclass(frozen=True)
class FitData:
    """The store's frames for fitting and their fingerprint (the app caches this per data
    version, so a what-if refit does not read and hash every metric again).

    ``metrics`` holds the hook-point values (every kind, with their params) and the network
    values of every hook-point selection (their params name it); ``selections`` maps each run
    to the selection its default compute used.
    """

    metrics: pl.DataFrame
    scalars: pl.DataFrame
    selections: Mapping[str, str]
    fingerprint: str

    def for_fit(self, network_selection: NetworkSelection | None) -> pl.DataFrame:
        """The metrics a fit sees: hook-point values, and the network values of one selection
        per run (``network_selection``, or each run's default) with params '' (features name
        the network values by metric)."""
        network = pl.col("scope") == Scope.NETWORK
        chosen = self.network_params(network_selection)
        keep = pl.col("params") == pl.col("run_id").replace_strict(
            chosen, default=None, return_dtype=pl.String
        )
        return self.metrics.filter(~network | keep).with_columns(
            params=pl.when(network).then(pl.lit("")).otherwise(pl.col("params"))
        )

    @functools.cached_property
    def _network_values(self) -> list[tuple[str, str]]:
        """(run, params) of every stored set of network values (read once per data)."""
        stored = self.metrics.filter(pl.col("scope") == Scope.NETWORK).select("run_id", "params")
        return sorted(stored.unique().iter_rows())

    def network_params(self, selection: NetworkSelection | None) -> dict[str, str]:
        """Run -> the params of the network values a fit takes, of ``selection`` (None: the
        paper preset): the run's default compute's when it used that selection, else the
        widest compute's that did (a run computed over several hook-point selections has
        several; one computed only with --select has no default)."""
        wanted = selection or NetworkSelection()
        matching: dict[str, list[str]] = {}
        for run_id, params in self._network_values:
            if _selection_of(params) == wanted:
                matching.setdefault(run_id, []).append(params)
        return {
            run_id: default if default in found else max(found, key=_width)
            for run_id, found in matching.items()
            for default in [self.selections.get(run_id, "")]
        }

    def default_selection(self, runs: Sequence[str] | None) -> NetworkSelection | None:
        """The network selection a default fit of ``runs`` (None: every run) takes, when the
        runs have network values of one (their hook points may differ); None otherwise."""
        chosen = self.network_params(None)
        found = {
            _selection_of(params)
            for run_id, params in chosen.items()
            if runs is None or run_id in runs
        }
        return found.pop() if len(found) == 1 else None


def _width(params: str) -> int:
    """How many hook points the network values of ``params`` cover."""
    return len(json.loads(params).get("hook_points", ()))


def _selection_of(params: str) -> NetworkSelection | None:
    """The selection a network value's params name (None for schema-1 values, which name
    hook points only)."""
    described = json.loads(params) if params else {}
    return NetworkSelection.from_description(described) if "preset" in described else None


def data_fingerprint(metrics: pl.DataFrame, scalars: pl.DataFrame) -> str:
    """A hash of the numbers a fit sees, so a stored fit is reused only for the same data."""
    digest = hashlib.sha256()
    for frame in (metrics, scalars):
        # Row hashes are fast; they may change with the polars version, which only costs a refit.
        ordered = frame.sort(frame.columns)
        digest.update(ordered.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:32]


def fit_data(store: Store) -> FitData:
    """Read the fitting frames of ``store`` and fingerprint them."""
    metrics = (
        store.read_metrics()
        .filter(pl.col("scope") != Scope.TENSOR)
        .select(
            "run_id",
            "step",
            pl.col("epoch").cast(pl.Float64),
            "scope",
            "hook_point",
            "metric",
            "params",
            "value",
        )
    )
    scalars = store.read_scalars().select(
        "run_id", "step", pl.col("epoch").cast(pl.Float64), "name", "value"
    )
    runs = store.read_runs()
    selections = dict(zip(runs["run_id"], runs["network_selection"], strict=True))
    return FitData(metrics, scalars, selections, data_fingerprint(metrics, scalars))


def fit_or_load(
    store: Store, config: FitConfig, *, workers: int | None = 1, data: FitData | None = None
) -> ServedFit:
    """The fit for ``config`` on the store's data: read back when stored, else fitted and saved.

    ``data``: the store's frames already read by ``fit_data`` (must be of the same store).
    """
    started = time.monotonic()
    data = data if data is not None else fit_data(store)
    if data.metrics.is_empty():
        raise LookupError(
            f"no metrics in {store.path}: run `dyntools compute FOLDER` before fitting"
        )
    config = dataclasses.replace(
        config,
        data_fingerprint=data.fingerprint,
        # The paper features of a fit name the tensors they were computed over.
        network_selection=config.network_selection
        or (data.default_selection(config.runs) if config.paper_features else None),
    )
    key = config_hash(config)
    stored = store.load_fit(key)
    if stored is not None:
        result = fit_result_from_json(json.loads(stored.result_json))
        return ServedFit(result, config, key, True, time.monotonic() - started)
    metrics = data.for_fit(config.network_selection)
    result = fit_latent_states(metrics, data.scalars, config, workers=workers)
    if config.paper_features:
        result = _with_network_notice(result, data.network_params(config.network_selection))
    store.save_fit(key, config_json(config), json.dumps(fit_result_to_json(result)))
    return ServedFit(result, config, key, False, time.monotonic() - started)


def _with_network_notice(result: FitResult, chosen: Mapping[str, str]) -> FitResult:
    """``result`` with a notice when its runs' network values were computed over different
    hook points (then their paper features measure different parts of the networks)."""
    covered = {
        run: tuple(json.loads(chosen[run])["hook_points"])
        for run in result.run_ids
        if run in chosen
    }
    if len(set(covered.values())) < 2:
        return result
    fewest = min(covered, key=lambda run: len(covered[run]))
    most = max(covered, key=lambda run: len(covered[run]))
    notice = Notice(
        "network-hook-points",
        "",
        f"the paper features of these runs were computed over different hook points "
        f"({len(set(covered.values()))} selections; {fewest} over {len(covered[fewest])}, "
        f"{most} over {len(covered[most])}): they measure different parts of the networks; "
        "compute every run with the same --select to compare them",
    )
    return dataclasses.replace(result, notices=(*result.notices, notice))


def stability_or_load(
    store: Store,
    served: ServedFit,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    workers: int | None = 1,
    data: FitData | None = None,
) -> ServedFit:
    """``served`` with its bootstrap over runs: read back when the stored fit has one of
    ``resamples``, else computed and stored with the fit (its caveats updated)."""
    found = served.result.stability
    if found is not None and found.resamples == resamples:
        return served
    started = time.monotonic()
    data = data if data is not None else fit_data(store)
    table = feature_table(
        data.for_fit(served.config.network_selection), data.scalars, served.config
    )
    result = with_stability(served.result, table, resamples=resamples, workers=workers)
    store.save_fit(
        served.config_hash, config_json(served.config), json.dumps(fit_result_to_json(result))
    )
    return dataclasses.replace(
        served, result=result, from_store=False, seconds=time.monotonic() - started
    )


def name_states(store: Store, served: ServedFit, names: Mapping[int, str]) -> ServedFit:
    """``served`` with user-given state names, stored with the fit (as it is in the store:
    its stability, when checked, is kept). Names are not part of the configuration: the same
    question asked again reads the named fit back."""
    stored = store.load_fit(served.config_hash)
    if stored is None:
        raise LookupError(f"fit {served.config_hash[:12]} is not in {store.path} any more: refit")
    result = fit_result_from_json(json.loads(stored.result_json)).with_state_names(names)
    store.save_fit(
        served.config_hash, config_json(served.config), json.dumps(fit_result_to_json(result))
    )
    return dataclasses.replace(served, result=result)
