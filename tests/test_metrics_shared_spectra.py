"""A SpectrumCache shared by two compute_weight_metrics calls over one checkpoint: each matrix
gets one SVD, and the values are those of calls without it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dyntools.metrics import MappingSource, SpectrumCache, compute_weight_metrics
from dyntools.metrics.matrices import Cut, Fused
from dyntools.metrics.weights import WeightMetrics

HEADS = 4


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * 0.02).half()

    return {
        "layers.0.attention.query_key_value.weight": rand(3 * 64, 64),
        "layers.0.attention.dense.weight": rand(64, 64),
        "layers.0.mlp.dense_h_to_4h.weight": rand(256, 64),
        "layers.0.mlp.dense_4h_to_h.weight": rand(64, 256),
        "layers.0.mlp.dense_4h_to_h.bias": rand(64),
    }


def _count_svds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Matrices given to torch.linalg.svdvals from now on, one entry per call."""
    seen: list[int] = []
    original: Callable[[torch.Tensor], torch.Tensor] = torch.linalg.svdvals

    def counting(stack: torch.Tensor) -> torch.Tensor:
        seen.append(1 if stack.dim() == 2 else stack.shape[0])
        return original(stack)

    monkeypatch.setattr(torch.linalg, "svdvals", counting)
    return seen


def _hook_points(state: dict[str, torch.Tensor], cache: SpectrumCache | None) -> WeightMetrics:
    """The hook points' values: fused attention split per head into q, k, v."""
    qkv = "layers.0.attention.query_key_value.weight"
    return compute_weight_metrics(
        MappingSource(state),
        list(state),
        cuts={qkv: Cut(heads=HEADS, fused=Fused.INTERLEAVED)},
        spectra=cache,
    )


def _network(state: dict[str, torch.Tensor], cache: SpectrumCache | None) -> WeightMetrics:
    """The polypythias network values: every weight as one (rows, -1) matrix."""
    weights = [name for name in state if name.endswith(".weight")]
    return compute_weight_metrics(
        MappingSource(state),
        list(state),
        metrics=["l1", "spectral", "var_singular_value", "mean_w", "median_w", "var_b"],
        cuts={name: Cut(rows=True) for name in weights},
        spectra=cache,
    )


def test_a_shared_cache_takes_each_matrix_once(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state()
    alone = (_hook_points(state, None), _network(state, None))
    seen = _count_svds(monkeypatch)
    cache = SpectrumCache()
    first = _hook_points(state, cache)
    per_head = sum(seen)
    # 12 q/k/v head matrices and 3 whole matrices.
    assert per_head == 3 * HEADS + 3 and len(cache) == per_head
    second = _network(state, cache)
    # Only the fused attention, now one 192 x 64 matrix, is new.
    assert sum(seen) - per_head == 1
    assert (first, second) == alone


def test_a_cache_without_singular_values_does_not_answer_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = {"mlp.weight": torch.randn(32, 16)}
    cache = SpectrumCache()
    norms_only = compute_weight_metrics(
        MappingSource(state), ["mlp.weight"], metrics=["l1", "l2"], spectra=cache
    )
    seen = _count_svds(monkeypatch)
    both = compute_weight_metrics(
        MappingSource(state), ["mlp.weight"], metrics=["l1", "spectral"], spectra=cache
    )
    assert sum(seen) == 1
    assert [r.value for r in both.values if r.metric == "l1"] == [
        r.value for r in norms_only.values if r.metric == "l1"
    ]
    compute_weight_metrics(
        MappingSource(state), ["mlp.weight"], metrics=["spectral"], spectra=cache
    )
    assert sum(seen) == 1  # now known
