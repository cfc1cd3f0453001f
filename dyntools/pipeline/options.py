"""What a compute is asked to do: hook points, metrics and their parameters, workers, device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dyntools.metrics.kinds import HistogramMetric, ParamValue
from dyntools.metrics.registry import (
    ACTIVATION_KINDS,
    WEIGHT_KINDS,
    metric,
    metric_names,
    select_metrics,
)
from dyntools.selection import NetworkSelection

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class ComputeOptions:
    """Everything that decides which numbers a compute produces, and how it runs.

    ``select``: hook-point patterns (exact, glob or ``re:``; empty = every natural hook point).
    ``metrics``: metric names (empty = every weight metric, plus every activation metric when
    ``activations``). ``params``: per-metric parameters over the registry's defaults, e.g.
    ``{"dead_fraction": {"threshold": 0.01}, "histogram": {"bins": 80}}`` (stored with each
    value). ``split_heads``: split 3-D attention weights (n_heads, d_head, d_model) into one
    matrix per head, as the reference does for W_Q/W_K/W_V. ``network``: the tensors the
    network values (the paper's features) take (default: the paper's). ``activation_select``: activation
    hook-point patterns (empty = every module whose forward runs). ``factory``: model factory
    for runs that are not dyntools runs. ``workers``: parallel workers (1: in this process;
    None: decided from the amount of work). ``runs``: run ids to compute (empty = every run
    found; an id the folder does not have raises, naming those it has).
    """

    select: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    activations: bool = False
    activation_select: tuple[str, ...] = ()
    factory: str | None = None
    split_heads: bool = True
    network: NetworkSelection = field(default_factory=NetworkSelection)
    params: Mapping[str, Mapping[str, ParamValue]] = field(default_factory=dict, hash=False)
    workers: int | None = None
    device: str = "cpu"
    runs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1 (or None for automatic), got {self.workers}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of {list(DEVICES)}")
        # Validates every name (an unknown one raises, listing the known ones).
        select_metrics(self.metrics or None)
        for name, given in self.params.items():
            entry = metric(name)
            entry.resolve(given)  # unknown or out-of-range parameters raise, naming the metric
            if isinstance(entry, HistogramMetric):
                entry.spec(given)  # the bin range is checked here, before any work

    @property
    def weight_metrics(self) -> tuple[str, ...]:
        known = metric_names(*WEIGHT_KINDS)
        return tuple(m for m in self.metrics if m in known) if self.metrics else known

    @property
    def activation_metrics(self) -> tuple[str, ...]:
        known = metric_names(*ACTIVATION_KINDS)
        if self.metrics:
            return tuple(m for m in self.metrics if m in known)
        return known if self.activations else ()

    def params_of(self, name: str) -> dict[str, ParamValue]:
        """The parameters of metric ``name`` in this compute (defaults where not given)."""
        return metric(name).resolve(self.params.get(name))

    def params_key(self, name: str) -> str:
        """The stored ``params`` text of metric ``name`` in this compute."""
        return metric(name).params_key(self.params.get(name))


def parse_patterns(values: Sequence[str] | None) -> tuple[str, ...]:
    """Patterns from repeated and comma-separated command-line values."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)
