"""Every anchor metric against visualize_training.metrics (visualizing-training 1.0.0)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE_RUNS
from metrics_reference import (
    FileSource,
    assert_close,
    conv_state,
    reference_values,
    transformer_selection,
    transformer_state,
    write_checkpoint,
)

from dyntools.metrics import compute_weight_metrics
from dyntools.metrics.registry import ANCHOR_MATRIX_METRICS

ANCHORS = [*ANCHOR_MATRIX_METRICS, "mean_w", "median_w", "var_w", "mean_b", "median_b", "var_b"]


def _ours(
    source: FileSource, names: list[str], heads: dict[str, int]
) -> dict[tuple[str, str], float | None]:
    result = compute_weight_metrics(source, names, metrics=ANCHORS, heads=heads)
    return {(row.tensor, row.metric): row.value for row in result.rows()}


def _compare(
    state: dict[str, torch.Tensor], path: Path, names: list[str], heads: dict[str, int]
) -> int:
    expected = reference_values(state, names, heads)
    ours = _ours(FileSource(path), names, heads)
    assert expected, "the reference produced nothing to compare"
    for key, value in expected.items():
        assert key in ours, f"{key} missing from ours"
        assert_close(ours[key], value, str(key))
    # Nothing of ours is left unchecked either.
    assert set(ours) == set(expected)
    return len(expected)


def test_transformer_checkpoint_matches_reference(tmp_path: Path) -> None:
    state = transformer_state(1, n_layers=2)
    path = write_checkpoint(tmp_path / "run", state)
    names, heads = transformer_selection(state)
    # 2 layers x (3 x 4 heads + 3 matrices) x 8 metrics + 6 pooled
    assert _compare(state, path, names, heads) == 2 * 15 * 8 + 6


def test_conv_checkpoint_matches_reference(tmp_path: Path) -> None:
    state = conv_state(2)
    path = write_checkpoint(tmp_path / "run", state)
    names = list(state)
    # 2 conv x 3 metrics + 2 linear x 8 + 6 pooled
    assert _compare(state, path, names, {}) == 2 * 3 + 2 * 8 + 6


def test_paper_features_match_reference_aggregation(tmp_path: Path) -> None:
    # The reference's get_stats_for_run: mean over matrices, nan-mean for the variance.
    state = transformer_state(3)
    state["blocks.0.attn.W_Q"][1, 2, 3] = float("nan")  # that head gets no values
    path = write_checkpoint(tmp_path / "run", state)
    names, heads = transformer_selection(state)
    expected = reference_values(state, names, heads)
    features = {
        row.metric: row.value
        for row in compute_weight_metrics(FileSource(path), names, heads=heads).paper_features()
    }
    for metric in ANCHOR_MATRIX_METRICS:
        per_matrix = [v for (label, m), v in expected.items() if m == metric]
        assert len(per_matrix) == 14  # 15 matrices, one holding NaN
        if metric == "var_singular_value":
            per_matrix = [v for v in per_matrix if not math.isnan(v)]
        assert_close(features[metric], sum(per_matrix) / len(per_matrix), metric)
    for metric in ("mean_w", "median_w", "var_w"):
        assert features[metric] is None  # W_Q's NaN makes the pooled weight stats missing
    for metric in ("mean_b", "median_b", "var_b"):
        assert_close(features[metric], expected[("(pooled)", metric)], metric)


def _sample_checkpoints() -> list[Path]:
    return sorted(SAMPLE_RUNS.glob("modular-addition/*/epoch_*.safetensors"))[:3]


@pytest.mark.skipif(not _sample_checkpoints(), reason="sample_runs/modular-addition not generated")
@pytest.mark.parametrize("path", _sample_checkpoints(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_run_checkpoints_match_reference(path: Path) -> None:
    source = FileSource(path)
    state = {name: source.read(name) for name in source.names()}
    names, heads = transformer_selection(state)
    assert names, f"{path} holds no reference-layout transformer tensors"
    _compare(state, path, names, heads)
