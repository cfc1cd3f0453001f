from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hmm_fixtures import small_runs

from dyntools.hmm import (
    FitConfig,
    config_hash,
    fit_latent_states,
    fit_result_from_json,
    fit_result_to_json,
    format_fit_report,
)
from dyntools.metrics import Feature
from dyntools.selection import NetworkSelection, Preset


def quick_config(**changes: object) -> FitConfig:
    return replace(FitConfig(max_states=4, restarts=2), **changes)  # type: ignore[arg-type]


def test_end_to_end_report_and_round_trip() -> None:
    runs = small_runs()
    result = fit_latent_states(runs.metrics, runs.scalars, quick_config())
    assert result.n_states == 3 and result.bic_choice == 3
    assert [n.initial_runs for n in result.graph.nodes] == [6, 0, 0]
    assert [(e.source, e.target) for e in result.graph.edges] == [(0, 1), (1, 2)]
    assert result.convergence is not None
    assert set(result.convergence.converged_at) == set(result.run_ids)

    text = format_fit_report(result)
    assert "<- lowest BIC" in text and "chosen: 3 states (lowest BIC)" in text
    assert re.search(r"run-00 0x\d+ 1x\d+ 2x\d+", text)
    assert "0 -> 1:" in text and "gradient:" in text and "R^2" in text
    assert "by construction" not in text  # 6 runs, 3 states: the regression is determined

    data = fit_result_to_json(result)
    text_json = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity
    back = fit_result_from_json(json.loads(text_json))
    assert fit_result_to_json(back) == data
    np.testing.assert_array_equal(back.states, result.states)
    np.testing.assert_array_equal(back.params.transmat, result.params.transmat)
    assert back.config == result.config


def test_config_hash_is_stable_and_covers_every_field() -> None:
    base = quick_config()
    assert config_hash(base) == config_hash(quick_config())
    assert re.fullmatch(r"[0-9a-f]{32}", config_hash(base))
    changed = [
        replace(base, seed=1),
        replace(base, covariance_type="full"),
        replace(base, normalize="per-run"),
        replace(base, features=(Feature("h", "l2"),)),
        replace(base, network_selection=NetworkSelection(Preset.POLYPYTHIAS)),
        replace(base, n_states=2),
        replace(base, data_fingerprint="abc"),
        replace(base, runs=("run-00",)),
    ]
    hashes = {config_hash(c) for c in changed}
    assert len(hashes) == len(changed) and config_hash(base) not in hashes


def test_override_is_reported() -> None:
    runs = small_runs()
    result = fit_latent_states(runs.metrics, None, quick_config(n_states=2))
    text = format_fit_report(result)
    assert "chosen: 2 states (asked for; the lowest BIC is at 3)" in text
    assert "no val_acc logged" in text and result.convergence is None


def test_unknown_run_is_an_error() -> None:
    runs = small_runs()
    with pytest.raises(LookupError, match="nope"):
        fit_latent_states(runs.metrics, runs.scalars, quick_config(runs=("nope",)))
    empty = runs.metrics.filter(pl.lit(False))
    with pytest.raises(ValueError, match="empty"):
        fit_latent_states(empty, None, quick_config())


def test_config_json_round_trip() -> None:
    from dyntools.hmm.analysis import config_from_json, config_json
    from dyntools.roles import Layer

    config = replace(
        quick_config(),
        features=(Feature("fc1", "l2"), Feature("relu1", "dead_fraction", '{"threshold":0.1}')),
        network_selection=NetworkSelection(Preset.CUSTOM, layers=(Layer.LINEAR,)),
        heldout_runs=("run-01",),
    )
    text = json.dumps(config_json(config))
    assert config_from_json(json.loads(text)) == config
    assert json.loads(text)["features"] == ["fc1/l2", 'relu1/dead_fraction@{"threshold":0.1}']
