"""The modules of each run's rebuilt model, recorded in network order by the compute: what the
app lists hook points by and finds activation functions (dead units) with."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store, locate_db

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs" / "digits-cnn" / "seed0"


def _cnn_run(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "cnn"
    run.mkdir(parents=True)
    shutil.copy2(SAMPLE / "run.json", run / "run.json")
    for checkpoint in sorted(SAMPLE.glob("epoch_*.safetensors"))[:2]:
        shutil.copy2(checkpoint, run / checkpoint.name)
    return run.parent


def test_compute_records_modules_in_network_order(tmp_path: Path) -> None:
    folder = _cnn_run(tmp_path)
    compute(folder, ComputeOptions(metrics=("l2",), workers=1))
    store = Store(locate_db(folder).path)
    modules = store.read_modules()
    assert set(modules["run_id"]) == {"cnn"}
    order = modules["hook_point"].to_list()
    # The forward order of the model (dyntools/models/cnn.py), not the alphabet.
    assert order[:3] == ["conv1", "relu1", "pool1"]
    assert order.index("conv2") < order.index("fc1") < order.index("relu3")
    types = dict(modules.select("hook_point", "module_type").iter_rows())
    assert types["relu1"] == "ReLU" and types["conv1"] == "Conv2d"
    assert modules["position"].to_list() == list(range(modules.height))


def test_set_modules_replaces_a_runs_modules(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.duckdb")
    first = pl.DataFrame(
        {
            "run_id": ["a", "a", "b"],
            "hook_point": ["fc1", "fc2", "fc1"],
            "position": [0, 1, 0],
            "module_type": ["Linear", "Linear", "Linear"],
        }
    )
    store.set_modules(first)
    # Recording the same modules again is no change (cached views keyed by the data version
    # stay valid); other modules are.
    version = store.data_version()
    store.set_modules(first)
    assert store.data_version() == version
    store.set_modules(
        pl.DataFrame(
            {"run_id": ["a"], "hook_point": ["act"], "position": [0], "module_type": ["GELU"]}
        )
    )
    assert store.read_modules().rows() == [("a", "act", 0, "GELU"), ("b", "fc1", 0, "Linear")]
    assert store.data_version() > version
