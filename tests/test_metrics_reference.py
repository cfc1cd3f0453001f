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

from dyntools.metrics import MetricValue, ReasonCode, Scope, compute_weight_metrics
from dyntools.metrics.kinds import MetricKind
from dyntools.metrics.matrices import Cut
from dyntools.metrics.registry import PAPER_FEATURES, metric

ANCHORS = list(PAPER_FEATURES)
ANCHOR_MATRIX_METRICS = [m for m in ANCHORS if metric(m).metric_kind is MetricKind.MATRIX]


def _cuts(heads: dict[str, int]) -> dict[str, Cut]:
    return {name: Cut(heads=count) for name, count in heads.items()}


def _label(row: MetricValue) -> str:
    """The reference's name of a value: the tensor, ``[head h]`` when split, ``(pooled)``."""
    if row.scope is Scope.NETWORK:
        return "(pooled)"
    return row.tensor if row.head is None else f"{row.tensor}[head {row.head}]"


def _ours(
    source: FileSource, names: list[str], heads: dict[str, int]
) -> dict[tuple[str, str], float | None]:
    result = compute_weight_metrics(source, names, metrics=ANCHORS, cuts=_cuts(heads))
    return {(_label(row), row.metric): row.value for row in (*result.values, *result.pooled)}


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


def _network(path: Path, names: list[str], heads: dict[str, int]) -> dict[str, MetricValue]:
    computed = compute_weight_metrics(FileSource(path), names, cuts=_cuts(heads))
    rows = (*computed.network_means(ANCHOR_MATRIX_METRICS), *computed.pooled)
    return {row.metric: row for row in rows}


def test_paper_features_match_reference_aggregation(tmp_path: Path) -> None:
    # The reference's get_stats_for_run: mean over matrices, nan-mean for the variance.
    state = transformer_state(3)
    path = write_checkpoint(tmp_path / "run", state)
    names, heads = transformer_selection(state)
    expected = reference_values(state, names, heads)
    features = _network(path, names, heads)
    for name in ANCHOR_MATRIX_METRICS:
        per_matrix = [v for (label, m), v in expected.items() if m == name]
        assert len(per_matrix) == 15
        if name == "var_singular_value":
            per_matrix = [v for v in per_matrix if not math.isnan(v)]
        assert_close(features[name].value, sum(per_matrix) / len(per_matrix), name)
    for name in ("mean_w", "median_w", "var_w", "mean_b", "median_b", "var_b"):
        assert_close(features[name].value, expected[("(pooled)", name)], name)


def test_a_nan_matrix_makes_the_network_values_missing_with_why(tmp_path: Path) -> None:
    # A mean over the other matrices would silently describe another network: missing instead.
    state = transformer_state(3)
    state["blocks.0.attn.W_Q"][1, 2, 3] = float("nan")  # that head gets no values
    path = write_checkpoint(tmp_path / "run", state)
    names, heads = transformer_selection(state)
    features = _network(path, names, heads)
    for name in ANCHOR_MATRIX_METRICS:
        row = features[name]
        assert row.value is None and row.reason is not None
        assert row.reason.code is ReasonCode.NONFINITE
        assert (
            "1 of 15 matrices" in row.reason.message and "blocks.0.attn.W_Q" in row.reason.message
        )
    for name in ("mean_w", "median_w", "var_w"):
        assert features[name].value is None  # W_Q's NaN makes the pooled weight stats missing
    assert features["mean_b"].value is not None


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
