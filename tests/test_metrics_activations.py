"""Activation statistics and fixed-edge histograms with underflow/overflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dyntools.metrics import layer_output, shared_spec, value_range
from dyntools.metrics.histogram import DEFAULT_HISTOGRAM, Histogram, HistogramSpec
from dyntools.metrics.kinds import ActivationMetric, HistogramMetric, Outcome
from dyntools.metrics.registry import metric


def value(name: str, output: torch.Tensor, **params: float) -> Outcome:
    """An activation metric of one output, through its registry entry."""
    entry = metric(name)
    assert isinstance(entry, ActivationMetric)
    return entry.compute(layer_output(output), entry.resolve(params))


def histogram(output: torch.Tensor, spec: HistogramSpec = DEFAULT_HISTOGRAM) -> Histogram:
    entry = metric("histogram")
    assert isinstance(entry, HistogramMetric)
    return entry.compute(layer_output(output), spec)


def test_stats_against_numpy() -> None:
    a = torch.relu(torch.randn(32, 10, generator=torch.Generator().manual_seed(8)))
    an = a.double().numpy()
    assert value("act_mean", a) == (pytest.approx(an.mean()), None)
    assert value("act_std", a) == (pytest.approx(an.std(ddof=1)), None)
    assert value("dead_fraction", a)[0] == pytest.approx((np.abs(an) < 1e-6).mean())
    assert metric("dead_fraction").resolve() == {"threshold": 1e-6}
    assert value("dead_fraction", a, threshold=0.5)[0] == pytest.approx((an < 0.5).mean())
    std, why = value("act_std", torch.tensor([2.0]))
    assert math.isnan(std or 0.0) and why is not None and "one value" in why.message


def test_nonfinite_values_are_counted_apart() -> None:
    layer = layer_output(torch.tensor([1.0, math.nan, math.inf]))
    assert (layer.count, layer.nonfinite, layer.values.tolist()) == (3, 2, [1.0])


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        metric("dead_fraction").resolve({"threshold": -1.0})
    with pytest.raises(ValueError, match="has no parameter"):
        metric("dead_fraction").resolve({"bins": 3})


def test_histogram_counts_add_up_including_under_and_overflow() -> None:
    a = torch.tensor([-3.0, -0.5, 0.0, 0.25, 0.5, 0.99, 1.0, 7.0, math.nan])
    spec = HistogramSpec(bins=4, low=0.0, high=1.0, transform="identity")
    h = histogram(a, spec)
    assert h.edges == (0.0, 0.25, 0.5, 0.75, 1.0)
    # [0, .25): 0.0 | [.25, .5): .25 | [.5, .75): .5 | [.75, 1): .99; 1.0 and 7.0 overflow
    assert h.counts == (1, 1, 1, 1)
    assert (h.underflow, h.overflow, h.nonfinite) == (2, 2, 1)
    assert h.total == a.numel()


def test_default_is_fast_ai_40_bins_of_abs_over_0_to_10() -> None:
    a = torch.randn(1000, generator=torch.Generator().manual_seed(9)) * 4
    h = histogram(a)
    assert len(h.counts) == 40 and h.edges[0] == 0.0 and h.edges[-1] == 10.0
    assert h.underflow == 0 and h.total == 1000
    expected, _ = np.histogram(np.abs(a.double().numpy()), bins=40, range=(0, 10))
    # numpy's last bin is closed; ours is half-open like the others (values == 10 overflow).
    assert list(h.counts) == list(expected)


def test_shared_spec_covers_every_checkpoint() -> None:
    outputs = [torch.randn(50) * s for s in (0.1, 2.0, 0.7)]
    spec = shared_spec([value_range(o) for o in outputs], bins=20)
    assert spec.low == 0.0 and spec.high > max(float(o.abs().max()) for o in outputs)
    for o in outputs:
        h = histogram(o, spec)
        assert h.underflow == h.overflow == 0 and sum(h.counts) == 50
    signed = shared_spec([value_range(o, "identity") for o in outputs], transform="identity")
    assert signed.low == -signed.high
    assert shared_spec([None]) == HistogramSpec()
    with pytest.raises(ValueError, match="low < high"):
        HistogramSpec(low=1.0, high=1.0)
