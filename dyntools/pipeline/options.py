"""What a compute is asked to do: hook points, metrics, activation settings, workers, device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dyntools.metrics.histogram_spec import DEFAULT_DEAD_THRESHOLD, DEFAULT_HISTOGRAM, HistogramSpec
from dyntools.metrics.registry import ACTIVATION_FAMILIES as ACTIVATION_FAMILIES
from dyntools.metrics.registry import HISTOGRAM_METRIC as HISTOGRAM_METRIC
from dyntools.metrics.registry import WEIGHT_FAMILIES as WEIGHT_FAMILIES
from dyntools.metrics.registry import metric_names, select_metrics

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class ComputeOptions:
    """Everything that decides which numbers a compute produces.

    ``select``: hook-point patterns (exact, glob or ``re:``; empty = every natural hook point).
    ``metrics``: metric names (empty = every weight metric, plus every activation metric when
    ``activations``). ``split_heads``: split 3-D attention weights (n_heads, d_head, d_model)
    into one matrix per head, as the reference does for W_Q/W_K/W_V.
    ``activation_select``: activation hook-point patterns (empty = every module whose forward
    runs). ``factory``: model factory for runs that are not dyntools runs.
    """

    select: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    activations: bool = False
    activation_select: tuple[str, ...] = ()
    factory: str | None = None
    split_heads: bool = True
    dead_threshold: float = DEFAULT_DEAD_THRESHOLD
    histogram: HistogramSpec = field(default_factory=lambda: DEFAULT_HISTOGRAM)
    workers: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of {list(DEVICES)}")
        if not self.dead_threshold >= 0:
            raise ValueError(f"dead threshold must be >= 0, got {self.dead_threshold}")
        # Validates every name (an unknown one raises, listing the known ones).
        select_metrics([m for m in self.metrics if m != HISTOGRAM_METRIC] or None)

    @property
    def weight_metrics(self) -> tuple[str, ...]:
        known = metric_names(*WEIGHT_FAMILIES)
        return tuple(m for m in self.metrics if m in known) if self.metrics else known

    @property
    def activation_metrics(self) -> tuple[str, ...]:
        known = metric_names(*ACTIVATION_FAMILIES)
        if self.metrics:
            return tuple(m for m in self.metrics if m in known)
        return (*known, HISTOGRAM_METRIC) if self.activations else ()

    def activation_params(self, metric: str) -> dict[str, Any]:
        """The parameters stored with an activation metric's value (part of its key)."""
        if metric == "dead_fraction":
            return {"threshold": self.dead_threshold}
        if metric == HISTOGRAM_METRIC:
            spec = self.histogram
            return {"bins": spec.bins, "low": spec.low, "high": spec.high, "on": spec.transform}
        return {}


def parse_patterns(values: Sequence[str] | None) -> tuple[str, ...]:
    """Patterns from repeated and comma-separated command-line values."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)
