"""A database written by the last schema-1 release (tests/fixtures/store_v1) opens after the
upgrade, serves the same values and needs no recompute."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dyntools.hmm import fit_result_from_json
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.fits import fit_data
from dyntools.store import SCHEMA_VERSION, Store, locate_db

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = FIXTURES / "store_v1"
# Schema 1 over tensors cut otherwise since: fused Q/K/V, Conv1d, Conv3d (its README says how).
FIXTURE_CUTS = FIXTURES / "store_v1_cuts"
SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"
# What the schema-1 compute of the fixture was asked for.
OPTIONS = ComputeOptions(activations=True, workers=1)


def _imported_folder(tmp_path: Path, fixture: Path = FIXTURE) -> Path:
    """The fixture's checkpoint files (with their recorded modification times) and its
    database, imported from the export as an older schema wrote it. The files are the sample
    runs' (``store_v1``) or the fixture's own ``run/`` folder."""
    folder = tmp_path / "runs"
    if (fixture / "run").is_dir():
        shutil.copytree(fixture / "run", folder / "run")
    checkpoints = pl.read_csv(fixture / "checkpoints.csv")
    for run_id, path, mtime_ns in checkpoints.select("run_id", "path", "mtime_ns").iter_rows():
        target = Path(path.replace("{folder}", str(folder)))
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLE_RUNS / run_id / target.name, target)
            for name in ("run.json", "probe.safetensors"):
                shutil.copyfile(SAMPLE_RUNS / run_id / name, target.parent / name)
        os.utime(target, ns=(mtime_ns, mtime_ns))
    export = tmp_path / "export"
    export.mkdir()
    for source in fixture.iterdir():
        if source.suffix in (".csv", ".sql"):
            text = source.read_text(encoding="utf-8")
            text = text.replace("{fixture}", str(export)).replace("{folder}", str(folder))
            (export / source.name).write_text(text, encoding="utf-8")
    db = locate_db(folder).path
    db.parent.mkdir(parents=True)
    with duckdb.connect(str(db)) as con:
        con.sql(f"IMPORT DATABASE '{export}'")
        meta = dict(pl.read_csv(fixture / "meta.csv").iter_rows())
        ((version,),) = con.sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        assert version == str(meta["schema_version"]) < str(SCHEMA_VERSION)
    return folder


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _imported_folder(tmp_path_factory.mktemp("v1"))


def _version(db: Path) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        ((value,),) = con.sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    return str(value)


# Definitions that changed after schema 1 (recomputed by the incremental machinery): the
# network values (the paper's tensor selection, docs/metrics.md), and the information plane's
# inputs (one-hot codes for token inputs, PyGlow's softmax output).
CHANGED = pl.col("hook_point").eq("") | pl.col("metric").str.starts_with("hsic_")

KEY = [
    "run_id",
    "step",
    "kind",
    "scope",
    "hook_point",
    "tensor",
    "head",
    "component",
    "metric",
    "params",
]


def test_only_what_changed_definition_is_recomputed(migrated: Path, tmp_path: Path) -> None:
    store = Store(locate_db(migrated).path)
    before = store.read_metrics()
    unchanged = before.filter(~CHANGED)
    summary = compute(migrated, OPTIONS)
    assert summary.failed == ()
    assert _version(store.path) == str(SCHEMA_VERSION)
    # A second compute finds everything up to date.
    assert compute(migrated, OPTIONS).computed == 0
    after = store.read_metrics()
    # Nothing stored is lost: every value of schema 1 is still there, unchanged.
    kept = unchanged.join(after, on=KEY, how="left", suffix="_after", nulls_equal=True)
    assert kept["value_after"].is_null().sum() == unchanged["value"].is_null().sum()
    same = kept.filter(pl.col("value").is_not_nan())
    # Unchanged up to the float32 accumulation the metrics now use where it is exact enough
    # (bounded at 1e-6 relative: tests/test_metrics_precision.py); schema 1 summed in float64.
    assert same["value_after"].to_list() == pytest.approx(same["value"].to_list(), rel=1e-6)
    assert before.filter(CHANGED).join(after, on=KEY, how="anti", nulls_equal=True).is_empty()
    # Schema 2 and older HSIC values did not say how the probe entered the kernels: they are
    # dropped on opening and recomputed, each naming its inputs (token ids as one-hot codes).
    assert not before["metric"].str.starts_with("hsic_").any()
    hsic = after.filter(pl.col("metric").str.starts_with("hsic_x"))
    inputs = hsic.group_by("run_id").agg(pl.col("params").unique())
    assert dict(inputs.iter_rows()) == {
        "digits-cnn/seed0": ['{"inputs":"values"}'],
        "modular-addition/seed0": ['{"inputs":"one-hot"}'],
    }
    pyglow_y = after.filter(pl.col("metric") == "hsic_y_pyglow")
    assert set(pyglow_y["params"]) == {'{"output":"softmax"}'}


def test_migrated_values_equal_a_fresh_compute(migrated: Path, tmp_path: Path) -> None:
    compute(migrated, OPTIONS)
    fresh_db = tmp_path / "fresh.duckdb"
    summary = compute(migrated, OPTIONS, db=fresh_db)
    assert (summary.computed, summary.failed) == (6, ())
    new = Store(fresh_db).read_metrics()
    old = (
        Store(locate_db(migrated).path)
        .read_metrics()
        .join(new, on=KEY, how="semi", nulls_equal=True)
    )
    assert old.height == new.height
    old, new = old.sort(KEY), new.sort(KEY)
    both = old.with_columns(new=new["value"]).filter(pl.col("value").is_not_nan())
    # The same definitions; float32 sums where exact enough (1e-6: test_metrics_precision.py).
    assert both["value"].to_list() == pytest.approx(both["new"].to_list(), rel=1e-6, abs=1e-12)
    old_h = Store(locate_db(migrated).path).read_histograms()
    new_h = Store(fresh_db).read_histograms()
    assert old_h.sort(old_h.columns[:6]).equals(new_h.sort(new_h.columns[:6]))


def test_heads_and_the_network_scope_are_columns(migrated: Path) -> None:
    metrics = Store(locate_db(migrated).path).read_metrics()
    heads = metrics.filter(pl.col("tensor") == "blocks.0.attn.W_Q", pl.col("metric") == "l2")
    assert sorted(heads["head"].unique().to_list()) == [0, 1, 2, 3]
    assert not metrics["tensor"].str.contains(r"\[head").any()
    # Schema 1's network values pooled every tensor, not the paper's selection: dropped on
    # opening (a compute makes the paper's, naming their preset).
    network = metrics.filter(pl.col("scope") == "network")
    assert set(network["hook_point"]) == {""} and set(network["tensor"]) == {""}
    assert network["params"].str.contains('"preset"').all()
    assert set(metrics.filter(pl.col("metric") == "act_mean")["kind"]) == {"activation"}
    assert set(metrics.filter(pl.col("metric") == "l2")["kind"]) == {"weight"}


def test_the_stored_fit_reads_back_with_the_paper_features_by_name(migrated: Path) -> None:
    store = Store(locate_db(migrated).path)
    (fit_hash,) = store.list_fits()["config_hash"].to_list()
    stored = store.load_fit(fit_hash)
    assert stored is not None
    result = fit_result_from_json(json.loads(stored.result_json))
    assert result.columns[:2] == ("l1", "l2")
    assert result.run_ids == ("modular-addition/seed0",)
    # The paper features are schema 1's no more: a compute makes them, with the run's
    # selection recorded.
    compute(migrated, OPTIONS)
    data = fit_data(store)
    assert data.selections["modular-addition/seed0"].startswith('{"hook_points"')
    assert '"preset":"paper"' in data.selections["modular-addition/seed0"]
    assert set(data.for_fit(None).filter(pl.col("hook_point") == "")["metric"]) >= {"l1", "var_b"}


def test_values_over_tensors_cut_otherwise_since_schema_1_are_recomputed(tmp_path: Path) -> None:
    """Schema 1 split a Conv1d weight per head, kept a fused Q/K/V weight whole and skipped a
    Conv3d weight: the next compute recomputes exactly those hook points (and the network
    values) and keeps the others' values, stale tensor rows leaving with their unit."""
    folder = _imported_folder(tmp_path / "old", FIXTURE_CUTS)
    store = Store(locate_db(folder).path)
    before = store.read_metrics()
    assert before.filter(pl.col("hook_point") == "conv1", pl.col("head").is_not_null()).height
    options = ComputeOptions(workers=1)
    summary = compute(folder, options)
    assert (summary.computed, summary.failed) == (2, ())
    assert compute(folder, options).computed == 0
    fresh = tmp_path / "fresh.duckdb"
    compute(folder, options, db=fresh)
    after, new = store.read_metrics(), Store(fresh).read_metrics()
    assert after.height == new.height
    both = (
        after.sort(KEY)
        .with_columns(new=new.sort(KEY)["value"])
        .filter(pl.col("value").is_not_nan())
    )
    assert both.select(KEY).equals(new.sort(KEY).filter(pl.col("value").is_not_nan()).select(KEY))
    assert both["value"].to_list() == pytest.approx(both["new"].to_list(), rel=1e-6, abs=1e-12)
    changed = ("conv1", "conv3", "gpt_neox.layers.0.attention.query_key_value", "")
    kept = before.filter(~pl.col("hook_point").is_in(changed), pl.col("scope") == "hook_point")
    # The hook points whose tensors are cut as before keep their stored values, bit for bit
    # (their tensors' rows are written again by the network values' recompute, equal to 1e-6
    # as checked above).
    assert (
        kept.height
        and kept.join(after, on=[*KEY, "value"], how="anti", nulls_equal=True).is_empty()
    )
    fused = after.filter(pl.col("hook_point") == changed[2], pl.col("scope") == "tensor")
    assert set(fused["component"]) == {"q", "k", "v"}
    assert after.filter(pl.col("hook_point") == "conv3", pl.col("metric") == "l2").height


def test_compute_problems_of_schema_1_name_their_units(tmp_path: Path) -> None:
    store = Store(locate_db(_imported_folder(tmp_path)).path)
    errors = store.read_errors()
    assert errors.height == 3
    assert set(zip(errors["kind"], errors["hook_point"], strict=True)) == {
        ("activation", "pos_embed")
    }


FIXTURE_V5 = FIXTURES / "store_v5_fused"


def test_a_tensor_schema_5_split_as_fused_is_computed_again(tmp_path: Path) -> None:
    """Schema 5 split a Mamba-like mixer.in_proj (no attention module) into q, k and v; since,
    Q/K/V are named inside attention only: the hook point is computed again, as one linear
    weight, and equals a fresh compute; the others keep their stored values."""
    folder = _imported_folder(tmp_path / "old", FIXTURE_V5)
    store = Store(locate_db(folder).path)
    in_proj = "backbone.layers.0.mixer.in_proj"
    before = store.read_metrics()
    assert set(before.filter(pl.col("hook_point") == in_proj)["component"]) >= {"q", "k", "v"}
    options = ComputeOptions(workers=1)
    assert compute(folder, options).failed == ()
    assert compute(folder, options).computed == 0
    after = store.read_metrics()
    assert set(after.filter(pl.col("hook_point") == in_proj)["component"]) == {""}
    fresh = tmp_path / "fresh.duckdb"
    compute(folder, options, db=fresh)
    new = Store(fresh).read_metrics()
    assert after.height == new.height
    same = after.sort(KEY).with_columns(new=new.sort(KEY)["value"]).drop_nulls("value")
    assert same["value"].to_list() == pytest.approx(same["new"].to_list(), rel=1e-6, abs=1e-12)
    kept = before.filter(pl.col("hook_point") == "lm_head", pl.col("scope") == "hook_point")
    assert (
        kept.height
        and kept.join(after, on=[*KEY, "value"], how="anti", nulls_equal=True).is_empty()
    )
