"""What is missing, and what a changed checkpoint invalidates (hand-worked expectations)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
import store_fixtures as fx

from dyntools.store import Store

HOOKS = ["blocks.0.attn", "blocks.0.mlp"]
METRICS = ["l2", "spectral"]


@pytest.fixture
def computed(tmp_path: Path) -> Store:
    """A store where every unit of 2 runs x 3 checkpoints x 2 hook points x 2 metrics is done."""
    store = Store(tmp_path / "dyntools.duckdb")
    ckpts = fx.checkpoints()
    store.upsert_checkpoints(ckpts)
    units = fx.candidates(ckpts, HOOKS, METRICS)
    store.write_results(metrics=fx.metrics_for(units, ["a", "b"]), computed=units)
    return store


def keys(frame: pl.DataFrame) -> set[tuple[object, ...]]:
    return set(frame.select("run_id", "step", "hook_point", "metric").rows())


def test_everything_is_missing_before_the_first_compute(tmp_path: Path) -> None:
    units = fx.candidates(fx.checkpoints(), HOOKS, METRICS)
    assert Store(tmp_path / "new.duckdb").missing_work(units).equals(units)


def test_unchanged_checkpoints_need_nothing(computed: Store) -> None:
    units = fx.candidates(fx.checkpoints(), HOOKS, METRICS)
    assert computed.missing_work(units).height == 0
    assert computed.upsert_checkpoints(fx.checkpoints()).height == 0


def test_a_changed_checkpoint_is_computed_alone(computed: Store) -> None:
    ckpts = fx.checkpoints().with_columns(
        fingerprint=pl.when((pl.col("run_id") == "seed1") & (pl.col("step") == 100))
        .then(pl.lit("rewritten"))
        .otherwise(pl.col("fingerprint"))
    )
    changed = computed.upsert_checkpoints(ckpts)
    assert changed.rows() == [("seed1", 100)]
    # Its old values are gone at once; the other checkpoints keep theirs.
    assert computed.read_metrics().filter(run_id="seed1", step=100).height == 0
    assert (
        computed.read_metrics().height == (6 - 1) * len(HOOKS) * len(METRICS) * 3
    )  # 3 tensor rows per unit
    todo = computed.missing_work(fx.candidates(ckpts, HOOKS, METRICS))
    assert keys(todo) == {("seed1", 100, h, m) for h in HOOKS for m in METRICS}
    assert set(todo["fingerprint"]) == {"rewritten"}


def test_a_stale_fingerprint_is_missing_even_without_upsert(computed: Store) -> None:
    units = fx.candidates(fx.checkpoints(), HOOKS, METRICS)
    units = units.with_columns(
        fingerprint=pl.when(pl.col("step") == 0).then(pl.lit("new")).otherwise("fingerprint")
    )
    assert keys(computed.missing_work(units)) == {
        (r, 0, h, m) for r in ("seed0", "seed1") for h in HOOKS for m in METRICS
    }


def test_an_added_checkpoint_is_computed_alone(computed: Store) -> None:
    ckpts = fx.checkpoints(range(4))
    assert computed.upsert_checkpoints(ckpts).height == 0
    todo = computed.missing_work(fx.candidates(ckpts, HOOKS, METRICS))
    assert keys(todo) == {
        (r, 300, h, m) for r in ("seed0", "seed1") for h in HOOKS for m in METRICS
    }


def test_a_new_hook_point_or_metric_computes_only_what_is_missing(computed: Store) -> None:
    ckpts = fx.checkpoints()
    wanted = fx.candidates(ckpts, [*HOOKS, "unembed"], [*METRICS, "trace"])
    todo = computed.missing_work(wanted)
    expected = {
        (r, s, h, m)
        for r in ("seed0", "seed1")
        for s in (0, 100, 200)
        for h in [*HOOKS, "unembed"]
        for m in [*METRICS, "trace"]
        if h == "unembed" or m == "trace"
    }
    assert keys(todo) == expected
    # The order of the candidates is kept, so the pipeline can walk checkpoints in order.
    assert todo.equals(wanted.join(todo, on=wanted.columns, how="semi"))


def test_the_same_metric_with_other_params_is_missing(computed: Store) -> None:
    units = fx.candidates(fx.checkpoints(), HOOKS, ["l2"], params='{"p":3}')
    assert computed.missing_work(units).height == units.height


def test_a_recomputed_unit_replaces_its_old_rows(computed: Store) -> None:
    unit = fx.candidates(fx.checkpoints(), ["blocks.0.attn"], ["l2"]).head(1)
    # This time the unit yields only tensor 'a': the stale 'b' and '' rows must go.
    fresh = fx.metrics_for(unit, ["a"]).filter(pl.col("tensor") == "a").with_columns(value=-1.0)
    computed.write_results(metrics=fresh, computed=unit)
    got = computed.read_metrics(run_ids=["seed0"], hook_points=["blocks.0.attn"], metrics=["l2"])
    assert got.filter(step=0).select("tensor", "value").rows() == [("a", -1.0)]
    assert got.filter(step=100).height == 3  # the other checkpoints are untouched


def test_a_file_left_empty_by_a_killed_first_compute_means_all_missing(tmp_path: Path) -> None:
    path = tmp_path / "dyntools.duckdb"
    duckdb.connect(str(path)).close()  # the file exists, but no table was ever committed
    store = Store(path)
    units = fx.candidates(fx.checkpoints(), HOOKS, METRICS)
    assert store.missing_work(units).equals(units)
    store.write_results(computed=units)  # the next write creates the tables
    assert store.missing_work(units).height == 0


def test_a_database_deleted_under_a_store_is_made_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "dyntools.duckdb")
    units = fx.candidates(fx.checkpoints(), HOOKS, METRICS)
    store.write_results(computed=units)
    store.path.unlink()
    store.write_results(computed=units.head(1))
    assert store.missing_work(units).height == units.height - 1


def test_a_checkpoint_gone_from_disk_is_kept_and_left_out(tmp_path: Path) -> None:
    from adversarial import good_run

    from dyntools.pipeline import ComputeOptions, compute
    from dyntools.pipeline.fits import fit_data
    from dyntools.store import locate_db

    root = tmp_path / "runs"
    good_run(root / "a")
    good_run(root / "b", seed=5)
    options = ComputeOptions(metrics=("l2",), workers=1)
    compute(root, options)
    store = Store(locate_db(root).path)
    version = store.data_version()
    gone_file = root / "a" / "step_10.safetensors"
    kept_bytes = gone_file.read_bytes()
    gone_file.unlink()
    summary = compute(root, options)
    assert any("1 checkpoint(s) computed before are gone from disk" in n for n in summary.notes)
    assert store.data_version() > version  # cached views and fits see the change
    shown = store.read_metrics()
    assert 10 not in shown.filter(pl.col("run_id") == "a")["step"].to_list()
    every = store.read_metrics(include_gone=True)
    assert 10 in every.filter(pl.col("run_id") == "a")["step"].to_list()  # kept for the record
    assert 10 not in fit_data(store).metrics.filter(pl.col("run_id") == "a")["step"].to_list()
    summary_table = store.summary()
    assert summary_table.filter(pl.col("run_id") == "a")["gone"].max() == 1
    # A compute of a subfolder leaves the other runs as they are.
    compute(root / "b", options)
    assert 10 not in store.read_metrics().filter(pl.col("run_id") == "a")["step"].to_list()
    # Found again: back in every read.
    gone_file.write_bytes(kept_bytes)
    assert compute(root, options).failed == ()
    assert 10 in store.read_metrics().filter(pl.col("run_id") == "a")["step"].to_list()
