"""The default paper features of every sample task equal the reference's: the tensors its
per-architecture code picks (visualizing-training 1.0.0, written out here by hand, independently
of dyntools.roles), measured by its own functions and averaged as its HMM code does."""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import torch
from conftest import SAMPLE_RUNS
from metrics_reference import FileSource, reference_values, transformer_selection

from dyntools.metrics.registry import PAPER_FEATURES
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store, locate_db

Selection = tuple[list[str], dict[str, int]]


def _mlp(names: list[str]) -> Selection:
    return [n for n in names if n.startswith("fc")], {}


def _lenet(names: list[str]) -> Selection:
    # get_metrics_lenet5: both convs and the three linear layers, weights and biases.
    return [n for n in names if n.split(".")[0] in ("conv1", "conv2", "fc1", "fc2", "fc3")], {}


def _resnet(names: list[str]) -> Selection:
    # get_metrics_resnet18: the stem conv, both convs of every block, fc; biases of fc only;
    # never the shortcut convs or BatchNorm.
    convs = [
        n
        for n in names
        if n == "stem.conv.weight" or (n.endswith((".conv1.weight", ".conv2.weight")))
    ]
    return [*convs, "fc.weight", "fc.bias"], {}


def _transformer(names: list[str], state: dict[str, torch.Tensor]) -> Selection:
    return transformer_selection(state)


TASKS: dict[str, Callable[..., Selection]] = {
    "modular-addition": _transformer,
    "sparse-parity": _mlp,
    "digits-cnn": _lenet,
    "digits-resnet": _resnet,
}


def _reference_features(path: Path, task: str) -> dict[str, float]:
    source = FileSource(path)
    state = {name: source.read(name) for name in source.names()}
    pick = TASKS[task]
    names, heads = pick(list(state), state) if task == "modular-addition" else pick(list(state))
    with warnings.catch_warnings():
        # The reference's torch.var of a one-singular-value matrix warns (and gives NaN).
        warnings.simplefilter("ignore", UserWarning)
        values = reference_values(state, names, heads)
    features: dict[str, float] = {}
    for metric in PAPER_FEATURES:
        if ("(pooled)", metric) in values:
            features[metric] = values[("(pooled)", metric)]
            continue
        per_matrix = [v for (label, m), v in values.items() if m == metric and label != "(pooled)"]
        if metric == "var_singular_value":
            per_matrix = [v for v in per_matrix if not math.isnan(v)]
        features[metric] = sum(per_matrix) / len(per_matrix)
    return features


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("paper")
    for task in TASKS:
        run = SAMPLE_RUNS / task / "seed0"
        target = folder / task
        target.mkdir()
        shutil.copy2(run / "run.json", target / "run.json")
        last = sorted(run.glob("epoch_*.safetensors"))[-1]
        shutil.copy2(last, target / last.name)
    summary = compute(folder, ComputeOptions(workers=1))
    assert summary.failed == () and summary.computed == len(TASKS)
    return folder


@pytest.mark.parametrize("task", sorted(TASKS))
def test_default_paper_features_equal_the_reference_selection(computed: Path, task: str) -> None:
    network = (
        Store(locate_db(computed).path)
        .read_metrics(run_ids=[task])
        .filter(pl.col("scope") == "network", pl.col("params").str.contains('"preset":"paper"'))
    )
    ours = dict(zip(network["metric"], network["value"], strict=True))
    assert set(ours) == set(PAPER_FEATURES)
    (path,) = (computed / task).glob("epoch_*.safetensors")
    for metric, expected in _reference_features(path, task).items():
        got = ours[metric]
        assert got is not None, metric
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-12), (task, metric, got, expected)
