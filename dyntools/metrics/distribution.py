"""One activation hook point's output as the activation metrics read it, and shared bin edges.

``layer_output`` flattens an output once (float64, finite values only, NaN/inf counted); the
activation metrics and the histogram (``builtin``) are functions of that record. Histograms
follow fast.ai's "colorful dimension" (40 bins over [0, 10) of |a| by default); ``shared_spec``
picks edges that fit every checkpoint of a hook point instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from dyntools.metrics.finite import all_finite
from dyntools.metrics.histogram import HistogramSpec, Transform
from dyntools.metrics.records import LayerOutput


def layer_output(output: torch.Tensor) -> LayerOutput:
    """Every value of one layer output (all samples, positions and units), flattened."""
    values = output.detach().reshape(-1).to(torch.float64)
    count = values.numel()
    if all_finite(values):
        return LayerOutput(values, count, 0)
    finite = values[torch.isfinite(values)]
    return LayerOutput(finite, count, count - finite.numel())


def _transformed(output: torch.Tensor, transform: Transform) -> torch.Tensor:
    values = output.detach().reshape(-1).to(torch.float64)
    return values.abs() if transform == "abs" else values


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
