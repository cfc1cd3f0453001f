"""Statistics and histograms of one activation hook point's output on the probe batch.

Defaults: ``dead_fraction`` counts outputs with |a| < 1e-6 (what ReLU leaves at exactly zero;
the threshold is stored with every value). Histograms follow fast.ai's "colorful dimension":
40 bins over [0, 10) of |a|; ``shared_spec`` picks edges that fit every checkpoint of a hook
point instead. Bins are half-open [e_i, e_i+1); values below the first edge are underflow, at or
above the last edge overflow, NaN/inf are counted apart: the counts always add up to the number
of values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from dyntools.metrics.finite import all_finite, count_nonfinite

# Defaults and the histogram spec live in a torch-free module (the app's pages read them);
# re-exported here, where they belong.
from dyntools.metrics.histogram_spec import DEFAULT_DEAD_THRESHOLD as DEFAULT_DEAD_THRESHOLD
from dyntools.metrics.histogram_spec import DEFAULT_HISTOGRAM as DEFAULT_HISTOGRAM
from dyntools.metrics.histogram_spec import TRANSFORMS as TRANSFORMS
from dyntools.metrics.histogram_spec import HistogramSpec as HistogramSpec
from dyntools.metrics.histogram_spec import Transform as Transform


@dataclass(frozen=True)
class ActivationStats:
    """``act_mean``, ``act_std`` (unbiased) and ``dead_fraction`` at ``dead_threshold``.

    Values are None (with ``reason``) when the output holds NaN/inf or is empty.
    """

    count: int
    act_mean: float | None
    act_std: float | None
    dead_fraction: float | None
    dead_threshold: float
    nonfinite: int = 0
    reason: str | None = None


def activation_stats(
    output: torch.Tensor, *, dead_threshold: float = DEFAULT_DEAD_THRESHOLD
) -> ActivationStats:
    """Statistics of every value of one layer output (all samples, all positions, all units)."""
    if not dead_threshold >= 0:
        raise ValueError(f"dead_threshold must be >= 0, got {dead_threshold}")
    values = output.detach().reshape(-1)
    count = values.numel()
    if count == 0:
        return ActivationStats(0, None, None, None, dead_threshold, 0, "empty output")
    nonfinite = 0 if all_finite(values) else sum(count_nonfinite(values))
    if nonfinite:
        why = f"{nonfinite} of {count} values are NaN/inf"
        return ActivationStats(count, None, None, None, dead_threshold, nonfinite, why)
    wide = values.to(torch.float64)
    std = float(wide.std()) if count > 1 else math.nan
    dead = float((wide.abs() < dead_threshold).sum()) / count
    note = None if count > 1 else "one value: unbiased std undefined (NaN)"
    return ActivationStats(count, float(wide.mean()), std, dead, dead_threshold, 0, note)


@dataclass(frozen=True)
class Histogram:
    """Counts per bin plus underflow, overflow and NaN/inf counts; edges kept for display."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    underflow: int
    overflow: int
    nonfinite: int
    transform: Transform

    @property
    def total(self) -> int:
        return sum(self.counts) + self.underflow + self.overflow + self.nonfinite


def _transformed(output: torch.Tensor, transform: Transform) -> torch.Tensor:
    values = output.detach().reshape(-1).to(torch.float64)
    return values.abs() if transform == "abs" else values


def histogram(output: torch.Tensor, spec: HistogramSpec = DEFAULT_HISTOGRAM) -> Histogram:
    """Histogram of one layer output with the fixed edges of ``spec``."""
    values = _transformed(output, spec.transform)
    finite = torch.isfinite(values)
    nonfinite = values.numel() - int(finite.sum())
    values = values[finite]
    edges = spec.edges()
    # bucketize(right=True): index 0 = below the first edge, bins + 1 = at or above the last.
    index = torch.bucketize(values, edges, right=True)
    counts = torch.bincount(index, minlength=spec.bins + 2).tolist()
    return Histogram(
        edges=tuple(edges.tolist()),
        counts=tuple(int(c) for c in counts[1 : spec.bins + 1]),
        underflow=int(counts[0]),
        overflow=int(counts[spec.bins + 1]),
        nonfinite=nonfinite,
        transform=spec.transform,
    )


def value_range(output: torch.Tensor, transform: Transform = "abs") -> tuple[float, float] | None:
    """(min, max) of the finite transformed values, or None if there are none."""
    values = _transformed(output, transform)
    values = values[torch.isfinite(values)]
    if values.numel() == 0:
        return None
    return float(values.min()), float(values.max())


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (readable bin edges)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value:
            return step * power
    return 10.0 * power


def shared_spec(
    ranges: Iterable[tuple[float, float] | None], *, bins: int = 40, transform: Transform = "abs"
) -> HistogramSpec:
    """Edges shared by every checkpoint of a hook point, from their ``value_range`` results.

    |a| histograms start at 0; signed ones are symmetric around 0. The upper edge is exclusive
    and rounded up to a readable number strictly above the largest value seen, so every value
    of those checkpoints lands in a bin.
    """
    found = [r for r in ranges if r is not None]
    if not found:
        return HistogramSpec(bins=bins, transform=transform)
    top = max(abs(high) for _, high in found)
    if transform == "identity":
        top = max(top, max(abs(low) for low, _ in found))
    edge = _nice_ceiling(top)
    if edge <= top:
        edge = _nice_ceiling(top * (1 + 1e-9) + 1e-300)
    low = 0.0 if transform == "abs" else -edge
    return HistogramSpec(bins=bins, low=low, high=edge, transform=transform)
