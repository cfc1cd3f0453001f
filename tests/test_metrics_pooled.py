"""Pooled statistics (streamed mean/var, exact lower median) and the paper-features aggregate."""

from __future__ import annotations

import math

import pytest
import torch

from dyntools.metrics import MetricValue, PooledAccumulator, Reason, ReasonCode, Scope
from dyntools.metrics.weights import WeightMetrics


def _pooled(tensors: list[torch.Tensor], in_memory_bytes: int) -> tuple[float, float, float]:
    acc = PooledAccumulator(in_memory_bytes=in_memory_bytes)
    for t in tensors:
        acc.add(t)
    stats = acc.finish(lambda: iter(tensors))
    assert stats.mean is not None and stats.var is not None and stats.median is not None
    return stats.mean, stats.var, stats.median


@pytest.mark.parametrize("in_memory_bytes", [1 << 30, 0], ids=["in-memory", "two-pass"])
def test_matches_torch_on_the_concatenation(in_memory_bytes: int) -> None:
    g = torch.Generator().manual_seed(6)
    tensors = [torch.randn(300, 40, generator=g) * 0.05 + 0.01, torch.randn(1001, generator=g)]
    tensors.append(torch.randn(7, 3, 3, 3, generator=g).to(torch.bfloat16))
    whole = torch.cat([t.float().flatten() for t in tensors])
    mean, var, median = _pooled(tensors, in_memory_bytes)
    # float32 row sums added in float64: well inside the 1e-5 held against the reference.
    assert mean == pytest.approx(float(whole.double().mean()), rel=1e-6)
    assert var == pytest.approx(float(whole.double().var()), rel=1e-6)
    assert median == float(whole.median())  # the exact element, lower median


def test_lower_median_on_an_even_count() -> None:
    for budget in (1 << 30, 0):
        assert _pooled([torch.tensor([4.0, 1.0]), torch.tensor([3.0, 2.0])], budget)[2] == 2.0


def test_two_pass_median_with_heavy_ties_and_offset_mean() -> None:
    values = torch.zeros(50_001)
    values[:20_000] = torch.linspace(-1, 1, 20_000)
    chunks = list(values.split(7_000))
    _, _, median = _pooled(chunks, 0)
    assert median == float(values.median()) == 0.0
    offset = [c + 1000.0 for c in chunks]  # sum of squares would lose digits without the shift
    mean2, var2, _ = _pooled(offset, 0)
    shifted = torch.cat(offset).double()
    assert mean2 == pytest.approx(float(shifted.mean()), rel=1e-12)
    assert var2 == pytest.approx(float(shifted.var()), rel=1e-6)


def test_nonfinite_values_make_the_statistics_missing() -> None:
    acc = PooledAccumulator()
    acc.add(torch.tensor([1.0, float("nan"), float("inf")]))
    stats = acc.finish()
    assert stats.mean is None and stats.median is None
    assert stats.reason == Reason(ReasonCode.NONFINITE, "2 of 3 values are NaN/inf")
    assert PooledAccumulator().finish().reason == Reason(ReasonCode.EMPTY, "no tensors selected")


def _value(tensor: str, metric: str, value: float | None, why: str = "") -> MetricValue:
    reason = Reason(ReasonCode.UNDEFINED, why) if why else None
    return MetricValue(Scope.TENSOR, "a", tensor, None, metric, value, reason)


def test_network_means_average_over_matrices() -> None:
    rows = (
        _value("a.w", "l1", 1.0),
        _value("a.w2", "l1", 3.0),
        _value("a.w", "var_singular_value", math.nan, "one singular value"),
        _value("a.w2", "var_singular_value", 4.0),
        _value("a.w3", "trace", None, "matrix holds NaN"),
    )
    computed = WeightMetrics(values=rows, pooled=(), skipped=())
    means = {
        row.metric: row for row in computed.network_means(["l1", "var_singular_value", "trace"])
    }
    assert {row.scope for row in means.values()} == {Scope.NETWORK}
    assert means["l1"].value == 2.0
    assert means["var_singular_value"].value == 4.0  # nan-mean
    trace = means["trace"]
    assert trace.value is None and trace.reason is not None
    # A matrix without a value makes the network value missing (not a mean over the others).
    assert "1 of 1 matrices have no trace" in trace.reason.message


def test_finish_twice_and_adding_after_finish_count_every_value_once() -> None:
    g = torch.Generator().manual_seed(8)
    first = [torch.randn(40, 30, generator=g), torch.randn(17, generator=g)]
    later = torch.randn(50, 20, generator=g)
    # 8 KB keeps the first two in memory; the later one (4 KB more) overflows the budget after
    # a finish, so the kept tensors (already merged) are only sampled, not merged again.
    for budget in (1 << 30, 8_000):
        acc = PooledAccumulator(in_memory_bytes=budget)
        for t in first:
            acc.add(t)
        assert acc.finish() == acc.finish()
        acc.add(later)
        stats = acc.finish(lambda: iter([*first, later]))
        whole = torch.cat([t.flatten() for t in [*first, later]]).double()
        assert stats.count == whole.numel()
        assert stats.mean == pytest.approx(float(whole.mean()), rel=1e-12)
        assert stats.var == pytest.approx(float(whole.var()), rel=1e-9)
        assert stats.median == float(whole.float().median())


def test_float64_values_near_the_top_of_the_range_do_not_overflow() -> None:
    acc = PooledAccumulator()
    acc.add(torch.full((3,), 1.5e308, dtype=torch.float64))
    stats = acc.finish()
    assert (stats.mean, stats.var, stats.median, stats.reason) == (1.5e308, 0.0, 1.5e308, None)
    spread = PooledAccumulator()
    spread.add(torch.tensor([1.5e308, 1.5e308, 1.0e308], dtype=torch.float64))
    # The mean is representable; the variance (about 8e615) is not, and is inf, not NaN.
    assert spread.finish().mean == pytest.approx(1.5e308 / 3 * 2 + 1.0e308 / 3, rel=1e-12)
    assert spread.finish().var == math.inf


def test_nonfinite_values_among_kept_tensors_are_counted() -> None:
    acc = PooledAccumulator()
    acc.add(torch.randn(10))
    acc.add(torch.tensor([float("nan"), 1.0, float("-inf"), float("nan")]))
    stats = acc.finish()
    assert stats.mean is None and stats.reason is not None
    assert stats.reason.message == "3 of 14 values are NaN/inf"
