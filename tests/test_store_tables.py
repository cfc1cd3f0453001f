"""Round trips of every store table through a real DuckDB file."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import store_fixtures as fx
from polars.testing import assert_frame_equal

from dyntools.metrics import params_key
from dyntools.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sub" / "dyntools.duckdb")


def test_runs_and_checkpoints_round_trip(store: Store) -> None:
    store.upsert_runs(fx.runs())
    store.upsert_checkpoints(fx.checkpoints())
    assert_frame_equal(store.read_runs(), fx.runs())
    got = store.read_checkpoints()
    assert not got["gone"].any()  # on disk until a scan finds them missing
    got = got.drop("gone")
    assert_frame_equal(got, fx.checkpoints().select(got.columns).sort("run_id", "step"))
    assert store.read_checkpoints(run_ids=["seed1"])["run_id"].unique().to_list() == ["seed1"]


def test_metrics_round_trip_with_tensor_params_and_null(store: Store) -> None:
    store.upsert_checkpoints(fx.checkpoints())
    metrics = pl.DataFrame(
        {
            "run_id": ["seed0", "seed0", "seed0", "seed1"],
            "step": [0, 0, 100, 0],
            "hook_point": ["blocks.0.attn", "blocks.0.attn", "blocks.0.attn", "fc1"],
            "tensor": ["blocks.0.attn.W_Q", "", "", ""],
            "metric": ["l2", "l2", "dead_fraction", "spectral"],
            "params": ["", "", params_key({"threshold": 0.0}), ""],
            "value": [1.5, 2.5, None, math.nan],
        }
    ).pipe(fx.typed)
    store.write_results(metrics=metrics)
    got = store.read_metrics()
    assert got.columns == [
        "run_id",
        "step",
        "epoch",
        "kind",
        "scope",
        "hook_point",
        "tensor",
        "head",
        "component",
        "metric",
        "params",
        "value",
    ]
    metrics = metrics.with_columns(head=pl.lit(None, dtype=pl.Int64), component=pl.lit(""))
    expected = metrics.join(
        fx.checkpoints().select("run_id", "step", "epoch"), on=["run_id", "step"]
    )
    assert_frame_equal(
        got.sort(got.columns[:11]), expected.select(got.columns).sort(got.columns[:11])
    )
    only = store.read_metrics(run_ids=["seed0"], hook_points=["blocks.0.attn"], metrics=["l2"])
    assert only["tensor"].sort().to_list() == ["", "blocks.0.attn.W_Q"]


def test_tensor_and_params_default_to_empty(store: Store) -> None:
    store.write_results(
        metrics=pl.DataFrame(
            {"run_id": ["r"], "step": [1], "hook_point": ["fc1"], "metric": ["l1"], "value": [3.0]}
        ).pipe(fx.typed)
    )
    row = store.read_metrics().row(0, named=True)
    assert (row["tensor"], row["params"], row["epoch"]) == ("", "", None)


def test_duplicate_keys_in_one_batch_keep_the_last_row(store: Store) -> None:
    metrics = pl.DataFrame(
        {
            "run_id": ["r", "r", "r"],
            "step": [1, 1, 1],
            "hook_point": ["fc1", "fc1", "fc1"],
            "metric": ["l2", "l2", "l1"],
            "value": [1.0, 2.0, 3.0],
        }
    ).pipe(fx.typed)
    store.write_results(metrics=metrics)
    got = store.read_metrics().select("metric", "value").sort("metric")
    assert got.rows() == [("l1", 3.0), ("l2", 2.0)]


def test_a_later_batch_replaces_by_key(store: Store) -> None:
    first = pl.DataFrame({"run_id": ["r"], "step": [1], "name": ["train_loss"], "value": [0.9]})
    store.write_results(scalars=first)
    store.write_results(scalars=first.with_columns(value=pl.lit(0.5)))
    assert store.read_scalars()["value"].to_list() == [0.5]


def test_scalars_round_trip(store: Store) -> None:
    scalars = pl.DataFrame(
        {
            "run_id": ["seed0"] * 3,
            "step": [0, 0, 10],
            "epoch": [0.0, 0.0, 0.5],
            "name": ["train_loss", "val_accuracy", "train_loss"],
            "value": [2.3, 0.1, 1.7],
        }
    )
    store.write_results(scalars=scalars)
    got = store.read_scalars()
    assert_frame_equal(got, scalars.select(got.columns).sort("run_id", "name", "step"))
    assert store.read_scalars(names=["val_accuracy"])["value"].to_list() == [0.1]


def test_histograms_round_trip(store: Store) -> None:
    histograms = pl.DataFrame(
        {
            "run_id": ["r", "r"],
            "step": [1, 2],
            "hook_point": ["blocks.0.mlp", "blocks.0.mlp"],
            "metric": ["activation_histogram"] * 2,
            "params": [params_key({"bins": 3, "range": [-1, 1]})] * 2,
            "edges": [[-1.0, 0.0, 0.5, 1.0], [-1.0, 0.0, 0.5, 1.0]],
            "counts": [[4, 0, 7], [1, 2, 3]],
            "underflow": [1, 0],
            "overflow": [0, 5],
        }
    ).pipe(fx.typed)
    store.write_results(histograms=histograms)
    got = store.read_histograms()
    assert got["counts"].to_list() == [[4, 0, 7], [1, 2, 3]]
    assert got["edges"].to_list()[0] == [-1.0, 0.0, 0.5, 1.0]
    assert got.select("underflow", "overflow").rows() == [(1, 0), (0, 5)]
    assert got["kind"].to_list() == ["weight", "weight"]


def test_histogram_with_wrong_number_of_counts_is_refused(store: Store) -> None:
    bad = pl.DataFrame(
        {
            "run_id": ["r"],
            "step": [1],
            "hook_point": ["fc1"],
            "metric": ["activation_histogram"],
            "edges": [[0.0, 1.0]],
            "counts": [[1, 2]],
        }
    ).pipe(fx.typed)
    with pytest.raises(ValueError, match=r"len\(edges\) == len\(counts\) \+ 1.*'fc1'"):
        store.write_results(histograms=bad)
    assert not store.exists


def test_errors_round_trip_and_replace_the_same_error(store: Store) -> None:
    error = pl.DataFrame(
        {
            "run_id": [None, "seed0"],
            "step": [None, 100],
            "file": ["/data/junk.safetensors", "/data/seed0/epoch_00001.safetensors"],
            "stage": ["discover", "metric"],
            "what": ["header", "blocks.0.attn spectral"],
            "code": ["unreadable", "svd-failed"],
            "why": ["header length 2**40 is larger than the file", "SVD did not converge"],
        }
    )
    store.write_results(errors=error)
    store.write_results(errors=error.head(1).with_columns(why=pl.lit("still broken")))
    got = store.read_errors().sort("file")
    assert got.height == 2
    assert got["code"].to_list() == ["unreadable", "svd-failed"]
    assert got["why"].to_list() == ["still broken", "SVD did not converge"]
    assert isinstance(got["logged_at"][0], datetime)
    assert store.read_errors(run_ids=["seed0"]).height == 1


def test_bad_frames_are_refused_with_the_column_named(store: Store) -> None:
    with pytest.raises(ValueError, match=r"missing columns \['value'\], unknown columns \['val'\]"):
        store.write_results(
            metrics=pl.DataFrame(
                {
                    "run_id": ["r"],
                    "step": [1],
                    "kind": ["weight"],
                    "scope": ["hook_point"],
                    "hook_point": ["h"],
                    "metric": ["l2"],
                    "val": [1.0],
                }
            )
        )
    with pytest.raises(ValueError, match="wrong type"):
        store.write_results(
            scalars=pl.DataFrame({"run_id": ["r"], "step": ["ten"], "name": ["x"], "value": [1.0]})
        )
    with pytest.raises(ValueError, match=r"empty key values.*'step': 1"):
        store.write_results(
            scalars=pl.DataFrame({"run_id": ["r"], "step": [None], "name": ["x"], "value": [1.0]})
        )


def test_hmm_fit_round_trip(store: Store) -> None:
    config = {"features": ["fc1/l2", "fc1/spectral"], "n_states": [1, 2, 3], "covariance": "diag"}
    key = "a" * 32  # the fitting code hashes its configuration; the store takes the key as given
    assert store.load_fit(key) is None  # no database yet
    result = json.dumps({"chosen": 3, "bic": [10.5, 8.25, 7.0]})
    store.save_fit(key, config, result)
    fit = store.load_fit(key)
    assert fit is not None
    assert (fit.config, fit.result_json) == (config, result)
    assert store.load_fit("b" * 32) is None


def test_summary_counts_checkpoints_values_and_nulls(store: Store) -> None:
    ckpts = fx.checkpoints(range(2))
    units = fx.candidates(ckpts, ["fc1"], ["l2"])
    metrics = fx.metrics_for(units, ["fc1.weight"])
    metrics = metrics.with_columns(
        value=pl.when(pl.col("step") == 100).then(None).otherwise(pl.col("value"))
    )
    store.write_results(metrics=metrics, computed=units)
    got = store.summary()
    assert got.select(
        "run_id", "checkpoints", "first_step", "last_step", "values", "null_values"
    ).rows() == [
        ("seed0", 2, 0, 100, 4, 2),
        ("seed1", 2, 0, 100, 4, 2),
    ]


def test_delete_checkpoints_forgets_their_results(store: Store) -> None:
    ckpts = fx.checkpoints(range(2))
    store.upsert_checkpoints(ckpts)
    units = fx.candidates(ckpts, ["fc1"], ["l2"])
    store.write_results(metrics=fx.metrics_for(units, ["fc1.weight"]), computed=units)
    store.delete_checkpoints(pl.DataFrame({"run_id": ["seed0"], "step": [100]}))
    assert store.read_checkpoints().height == 3
    assert (store.read_metrics().filter(run_id="seed0", step=100)).height == 0
    assert store.missing_work(units).select("run_id", "step").rows() == [("seed0", 100)]


def test_data_version_counts_result_changes(store: Store) -> None:
    store.upsert_runs(fx.runs())
    before = store.data_version()
    store.write_results(
        scalars=pl.DataFrame({"run_id": ["r"], "step": [1], "name": ["x"], "value": [1.0]})
    )
    assert store.data_version() == before + 1


def test_reading_a_missing_database_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no dyntools database at .*dyntools compute"):
        Store(tmp_path / "none.duckdb").read_metrics()
