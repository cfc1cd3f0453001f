"""Histogram bins and counts of layer outputs ("the colorful dimension"), without torch.

fast.ai's choice is the default: 40 bins over [0, 10) of |a|. Bins are half-open
[e_i, e_i+1); values below the first edge are underflow, at or above the last edge overflow,
NaN/inf are counted apart: the counts always add up to the number of values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Transform = Literal["abs", "identity"]
TRANSFORMS: tuple[Transform, ...] = ("abs", "identity")


@dataclass(frozen=True)
class HistogramSpec:
    """Fixed bin edges: ``bins`` equal bins over [low, high) of the transformed values."""

    bins: int = 40
    low: float = 0.0
    high: float = 10.0
    transform: Transform = "abs"

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"a histogram needs at least 1 bin, got {self.bins}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"histogram range must be finite with low < high, got [{self.low}, {self.high})"
            )
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; known: {list(TRANSFORMS)}")

    def edges(self) -> torch.Tensor:
        import torch

        return torch.linspace(self.low, self.high, self.bins + 1, dtype=torch.float64)


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


DEFAULT_HISTOGRAM = HistogramSpec()
# More bins than any chart can show: 10,000 bins of every hook point and checkpoint already make
# a histogram table of gigabytes on a real run; a larger number is a typo.
MAX_BINS = 10_000
