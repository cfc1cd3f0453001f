"""Export: the tidy table through CSV and Parquet, and the `dyntools export` command."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dyntools.cli import main
from dyntools.metrics import params_key
from dyntools.store import Store, default_db_path, export

COLUMNS = [
    "source",
    "run_id",
    "step",
    "epoch",
    "kind",
    "scope",
    "hook_point",
    "tensor",
    "head",
    "component",
    "name",
    "params",
    "value",
]
TEXT = ("kind", "scope", "hook_point", "tensor", "component", "params")


def fill(store: Store) -> None:
    store.upsert_checkpoints(
        pl.DataFrame(
            {
                "run_id": ["seed0", "seed0"],
                "step": [0, 500],
                "epoch": [0.0, 1.0],
                "path": ["a", "b"],
                "size": [1, 1],
                "mtime_ns": [1, 1],
                "header_hash": ["h", "h"],
                "fingerprint": ["f0", "f1"],
            }
        )
    )
    store.write_results(
        metrics=pl.DataFrame(
            {
                "run_id": ["seed0"] * 4,
                "step": [0, 500, 500, 500],
                "kind": ["weight"] * 3 + ["activation"],
                "scope": ["tensor", "tensor", "hook_point", "hook_point"],
                "hook_point": ["blocks.0.attn"] * 3 + ["blocks.0.mlp"],
                "tensor": ["blocks.0.attn.W_Q", "blocks.0.attn.W_Q", "", ""],
                "head": [2, 2, None, None],
                "metric": ["l2", "l2", "spectral", "dead_fraction"],
                "params": ["", "", "", params_key({"threshold": 0.0})],
                "value": [1.0 / 3.0, 2.0, None, math.nan],
            }
        ),
        scalars=pl.DataFrame(
            {
                "run_id": ["seed0", "seed0"],
                "step": [0, 250],
                "epoch": [0.0, 0.5],
                "name": ["train_loss", "train_loss"],
                "value": [2.302585092994046, 1e-300],
            }
        ),
    )


def read_back(path: Path, fmt: str) -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(path)
    schema = {c: pl.String for c in COLUMNS} | {
        "step": pl.Int64,
        "epoch": pl.Float64,
        "head": pl.Int64,
        "value": pl.Float64,
    }
    # Empty text fields mean '' (not NULL) in the text columns.
    return pl.read_csv(path, schema=schema).with_columns(pl.col(*TEXT).fill_null(""))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip(tmp_path: Path, fmt: str) -> None:
    store = Store(tmp_path / "dyntools.duckdb")
    fill(store)
    out = tmp_path / f"table.{fmt}"
    assert export(store, out, fmt) == 6
    got = read_back(out, fmt)
    assert got.columns == COLUMNS
    assert_frame_equal(got, store.tidy_table())
    scalar = got.filter(source="scalar", step=250).row(0, named=True)
    assert (scalar["name"], scalar["value"], scalar["epoch"]) == ("train_loss", 1e-300, 0.5)
    assert got.filter(name="dead_fraction")["params"].to_list() == ['{"threshold":0.0}']
    assert got.filter(name="l2")["head"].to_list() == [2, 2]
    assert set(got.filter(name="dead_fraction")["kind"]) == {"activation"}
    assert not list(tmp_path.glob(".*partial"))


def test_export_command_writes_the_folder_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    fill(Store(default_db_path(folder)))
    out = tmp_path / "metrics.parquet"
    assert main(["export", str(folder), "--out", str(out)]) == 0
    assert pl.read_parquet(out).height == 6
    assert "wrote 6 rows" in capsys.readouterr().out
    # An existing output is kept unless --force.
    assert main(["export", str(folder), "--out", str(out), "--format", "csv"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["export", str(folder), "--out", str(out), "--format", "csv", "--force"]) == 0
    assert pl.read_csv(out).height == 6


def test_export_command_without_a_database_says_run_compute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["export", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert status == 2
    assert f"no dyntools database for {tmp_path}" in err
    assert f"run `dyntools compute {tmp_path}` first" in err
    assert len(err.strip().splitlines()) == 1


def test_force_replaces_only_a_regular_file_and_never_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    db = default_db_path(folder)
    fill(Store(db))
    before = Store(db).read_metrics()
    target = tmp_path / "elsewhere.csv"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    for out, said in ((link, "is a symbolic link"), (fifo, "not a regular file"), (db, "database")):
        assert main(["export", str(folder), "--out", str(out), "--force"]) == 2
        assert said in capsys.readouterr().err
    assert link.is_symlink() and target.read_text() == "keep me"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert Store(db).read_metrics().equals(before)  # nothing stored was lost
