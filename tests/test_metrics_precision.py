"""Weight metrics computed in the tensors' own precision, against float64 numpy.

The error bounds these tests hold (docs/metrics.md, "Stored dtypes and precision"):

- pooled statistics of float16/bfloat16 tensors (counted bit patterns): the mean and the median
  exact (the mean is the correctly rounded float64 sum over n, the median the element itself),
  the variance within 1e-12 relative;
- pooled statistics of float32 tensors (float32 rows of 4096 added in float64): the mean within
  1e-6 of mean(|w|), the variance within 1e-6 relative, the median exact;
- temporal sums (both versions widened to float32 by blocks, rows of 256 added in float64):
  the norms, ``relative_update`` and the dot product within 1e-6 relative (the cosine within
  1e-6 absolute), float64 taken again where float32 squares overflow or underflow;
- l1 and l2 of the column-major stacks the SVD reads: within 1e-6 relative, and the same
  singular values, bit for bit, as from a row-major stack.

Realistic sizes: Pythia-70m's matrices (512 x 2048 MLP, 1536 x 512 fused attention).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import torch

from dyntools.metrics import MappingSource, PooledAccumulator, ReasonCode, compute_weight_metrics
from dyntools.metrics.pooled import _union_kth
from dyntools.metrics.records import Comparison, PooledStats
from dyntools.metrics.spectrum import matrix_batch
from dyntools.metrics.temporal import compare
from dyntools.metrics.weights import _stack

HALF = [torch.float16, torch.bfloat16]
ALL = [*HALF, torch.float32]
Floats = npt.NDArray[np.float64]


def _weights(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(2048, 512, generator=g) * 0.02).to(dtype),
        (torch.randn(512, 2048, generator=g) * 0.02 + 1e-3).to(dtype),
        (torch.randn(1536, 512, generator=g) * 0.05).to(dtype),
        (torch.randn(2048, generator=g) * 0.01).to(dtype),
    ]


def _float64(tensors: list[torch.Tensor]) -> Floats:
    return np.concatenate([t.double().numpy().ravel() for t in tensors])


def _pooled(tensors: list[torch.Tensor], in_memory_bytes: int = 1 << 30) -> PooledStats:
    accumulator = PooledAccumulator(in_memory_bytes=in_memory_bytes)
    for tensor in tensors:
        accumulator.add(tensor)
    return accumulator.finish(lambda: iter(tensors))


def _lower_median(values: Floats) -> float:
    k = (values.size - 1) // 2
    return float(np.partition(values, k)[k])


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_counted_half_precision_statistics_are_exact(dtype: torch.dtype) -> None:
    tensors = _weights(dtype)
    values = _float64(tensors)
    # Without a reread either: 16-bit tensors never need a second pass.
    accumulator = PooledAccumulator(in_memory_bytes=0)
    for tensor in tensors:
        accumulator.add(tensor)
    stats = accumulator.finish()
    assert stats.reason is None and stats.count == values.size
    assert stats.mean == math.fsum(values.tolist()) / values.size  # the exact sum, rounded once
    assert stats.median == _lower_median(values)
    assert stats.median == float(torch.cat([t.flatten() for t in tensors]).float().median())
    expected_var = float(np.var(values, ddof=1))
    assert stats.var == pytest.approx(expected_var, rel=1e-12)


@pytest.mark.parametrize("in_memory_bytes", [1 << 30, 0], ids=["in-memory", "two-pass"])
def test_float32_statistics_within_their_bound(in_memory_bytes: int) -> None:
    for offset in (0.0, 1000.0):  # a mean that dominates the spread is shifted out first
        tensors = [t + offset for t in _weights(torch.float32)]
        values = _float64(tensors)
        stats = _pooled(tensors, in_memory_bytes)
        assert stats.mean is not None and stats.var is not None
        exact_mean = math.fsum(values.tolist()) / values.size
        assert abs(stats.mean - exact_mean) <= 1e-6 * float(np.abs(values).mean())
        assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-6)
        assert stats.median == _lower_median(values)


@pytest.mark.parametrize("in_memory_bytes", [1 << 30, 0], ids=["in-memory", "two-pass"])
def test_a_set_mixing_16_and_32_bit_tensors_has_the_exact_median(in_memory_bytes: int) -> None:
    g = torch.Generator().manual_seed(3)
    tensors = [
        (torch.randn(512, 512, generator=g) * 0.02).half(),
        torch.randn(300_001, generator=g) * 0.03,  # float32, streamed when over the budget
        (torch.randn(256, 512, generator=g) * 0.02).bfloat16(),
        torch.zeros(1000, dtype=torch.float16),  # ties with the float32 zeros below
        torch.zeros(999),
    ]
    values = _float64(tensors)
    stats = _pooled(tensors, in_memory_bytes)
    assert stats.median == _lower_median(values)
    assert stats.mean == pytest.approx(float(values.mean()), rel=1e-6, abs=1e-9)
    assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-6)
    # Medians of many sizes, and every rank, on small mixed sets with heavy ties.
    halves = torch.tensor([0.5, -1.0, 0.5, 2.0, 0.75]).half()
    floats = torch.tensor([0.5, 0.25, -1.0, 3.0, 0.6])
    for h in range(6):
        for f in range(6 if h else 1, 6):
            parts = [halves[:h], floats[:f]]
            expected = _lower_median(_float64(parts))
            assert _pooled(parts).median == expected
            assert _pooled(parts, 0).median == expected
            ordered = np.sort(_float64(parts))
            unique, counts = np.unique(halves[:h].double().numpy(), return_counts=True)
            for rank in range(h + f):
                found = _union_kth(floats[:f].numpy(), unique, counts.astype(np.int64), rank)
                assert found == ordered[rank]


def _exact_comparison(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float, float]:
    x, y = a.double().numpy().ravel(), b.double().numpy().ravel()
    return (
        float(np.linalg.norm(x)),
        float(np.linalg.norm(y)),
        float(np.linalg.norm(x - y)),
        math.fsum((x * y).tolist()),
    )


def _assert_comparison_close(found: Comparison, a: torch.Tensor, b: torch.Tensor) -> None:
    norm, other_norm, difference_norm, dot = _exact_comparison(a, b)
    assert found.problem is None
    assert found.norm == pytest.approx(norm, rel=1e-6)
    assert found.other_norm == pytest.approx(other_norm, rel=1e-6)
    assert found.difference_norm == pytest.approx(difference_norm, rel=1e-6)
    assert found.dot == pytest.approx(dot, rel=1e-6)
    cosine = found.dot / (found.norm * found.other_norm)
    assert abs(cosine - dot / (norm * other_norm)) <= 1e-6


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_temporal_sums_within_their_bound(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(5)
    before = torch.randn(1536, 512, generator=g) * 0.02
    for scale in (1e-3, 1e-1):  # a small update (rounding matters) and a large one
        after = (before + scale * 0.02 * torch.randn(1536, 512, generator=g)).to(dtype)
        old = before.to(dtype)
        _assert_comparison_close(compare(after, old, "previous"), after, old)
        # A head's rows (contiguous) and GPT-2's transposed columns (not contiguous).
        for head in ((after[64:128], old[64:128]), (after.T[:, :64], old.T[:, :64])):
            _assert_comparison_close(compare(*head, "previous"), *head)


def test_temporal_metrics_through_compute_weight_metrics_match_float64() -> None:
    g = torch.Generator().manual_seed(6)
    first = (torch.randn(2048, 512, generator=g) * 0.02).half()
    previous = (first.float() + 0.01 * torch.randn(2048, 512, generator=g)).half()
    current = (previous.float() + 0.001 * torch.randn(2048, 512, generator=g)).half()
    rows = {
        row.metric: row.value
        for row in compute_weight_metrics(
            MappingSource({"mlp.weight": current}),
            ["mlp.weight"],
            metrics=["relative_update", "cosine_to_init"],
            previous=MappingSource({"mlp.weight": previous}),
            initial=MappingSource({"mlp.weight": first}),
        ).values
    }
    norm, other_norm, difference_norm, _ = _exact_comparison(current, previous)
    assert rows["relative_update"] == pytest.approx(difference_norm / other_norm, rel=1e-6)
    norm, other_norm, _, dot = _exact_comparison(current, first)
    assert rows["cosine_to_init"] == pytest.approx(dot / (norm * other_norm), abs=1e-6)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_norms_of_the_column_major_stack(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(7)
    for shape in ((2048, 512), (512, 2048), (64, 512)):  # tall, wide, a head
        matrices = [(torch.randn(*shape, generator=g) * 0.02).to(dtype) for _ in range(3)]
        stack, _ = _stack(matrices)
        assert stack.mT.is_contiguous()  # the layout LAPACK reads
        batch = matrix_batch(stack, with_svd=True)
        for i, matrix in enumerate(matrices):
            x = matrix.double().numpy()
            assert batch.l1[i] == pytest.approx(float(np.abs(x).sum()), rel=1e-6)
            assert batch.l2[i] == pytest.approx(float(np.linalg.norm(x)), rel=1e-6)
            assert batch.trace[i] == pytest.approx(float(np.trace(x)), rel=1e-6, abs=1e-9)
        # The same input to LAPACK as a row-major stack of the tall matrices, so the same values.
        tall = torch.stack([(m.mT if shape[0] < shape[1] else m).float() for m in matrices])
        assert torch.equal(torch.linalg.svdvals(stack), torch.linalg.svdvals(tall.contiguous()))


def test_huge_values_stay_finite() -> None:
    # float16's largest value: a float16 accumulation would overflow at once; counts do not.
    big = torch.full((512, 2048), 65504.0, dtype=torch.float16)
    big[::2] = -65504.0
    stats = _pooled([big])
    values = _float64([big])
    assert stats.mean == 0.0 and stats.median == -65504.0
    assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-12)
    half = (big.float() * 0.5).half()
    _assert_comparison_close(compare(big, half, "previous"), big, half)
    # bfloat16 and float32 values whose float32 squares overflow: float64 is taken instead.
    for dtype in (torch.bfloat16, torch.float32):
        g = torch.Generator().manual_seed(8)
        a = (torch.randn(1536, 512, generator=g) * 1e25).to(dtype)
        b = (a.double() * 1.01).to(dtype)
        _assert_comparison_close(compare(a, b, "previous"), a, b)
        for budget in (1 << 30, 0):
            stats = _pooled([a], budget)
            values = _float64([a])
            assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-6)
            assert stats.median == _lower_median(values)


def test_tiny_values_keep_their_digits() -> None:
    g = torch.Generator().manual_seed(9)
    subnormal = torch.randint(-3, 4, (512, 512), generator=g).half() * 6e-8  # float16 subnormals
    stats = _pooled([subnormal])
    values = _float64([subnormal])
    assert stats.mean == math.fsum(values.tolist()) / values.size
    assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-12)
    assert stats.median == _lower_median(values)
    # float32 squares of these underflow (to 0 below 1e-23): float64 is taken instead.
    for dtype in (torch.bfloat16, torch.float32):
        a = (torch.randn(1536, 512, generator=g) * 1e-25).to(dtype)
        b = (a.double() * 1.01 + 1e-27).to(dtype)
        _assert_comparison_close(compare(a, b, "previous"), a, b)
        for budget in (1 << 30, 0):
            stats = _pooled([a], budget)
            values = _float64([a])
            assert stats.var == pytest.approx(float(np.var(values, ddof=1)), rel=1e-6)


@pytest.mark.parametrize("dtype", ALL, ids=str)
def test_all_equal_values(dtype: torch.dtype) -> None:
    value = float(torch.tensor(0.1).to(dtype))
    same = torch.full((1536, 512), value, dtype=dtype)
    for budget in (1 << 30, 0):
        stats = _pooled([same, same[:7]], budget)
        assert stats.var == pytest.approx(0.0, abs=1e-12 * value**2)
        assert stats.mean == pytest.approx(value, rel=1e-7) and stats.median == value
    found = compare(same, same, "previous")
    assert found.difference_norm == 0.0
    assert found.dot / (found.norm * found.other_norm) == pytest.approx(1.0, abs=1e-6)
    zeros = torch.zeros(1536, 512, dtype=dtype)
    assert compare(zeros, zeros, "initial") == Comparison(0.0, 0.0, 0.0, 0.0)
    assert _pooled([zeros]).var == 0.0 == _pooled([zeros], 0).var


def test_zero_size_tensors_count_for_nothing() -> None:
    empty = [torch.zeros(0, 512, dtype=torch.float16), torch.zeros(0), torch.zeros(0).bfloat16()]
    stats = _pooled(empty)
    assert stats.count == 0 and stats.reason is not None
    assert stats.reason.code is ReasonCode.EMPTY
    tensors = _weights(torch.float16)[:2]
    assert _pooled([*empty, *tensors]) == _pooled(tensors)
    nothing = compare(empty[0], empty[0], "previous")
    assert (nothing.norm, nothing.other_norm, nothing.difference_norm) == (0.0, 0.0, 0.0)


def test_nan_and_inf_among_counted_values_are_counted() -> None:
    tensor = torch.randn(64, 64).half()
    tensor[0, :3] = torch.tensor([math.nan, math.inf, -math.inf]).half()
    stats = _pooled([tensor, torch.randn(10)])
    assert stats.mean is None and stats.reason is not None
    assert stats.reason.code is ReasonCode.NONFINITE
    assert stats.reason.message == f"3 of {64 * 64 + 10} values are NaN/inf"
