"""What a registry entry is: a metric's name, kind, parameters, function and description.

Each kind of metric reads its own input record, built once per matrix, tensor pair, layer output
or checkpoint by the code that owns the tensors (``weights``, ``pooled``, ``temporal``, the
pipeline's activation job), and a metric is a small function of that record:

========================  =======================================  ==============================
kind                      function                                 computed for
========================  =======================================  ==============================
``MatrixMetric``          ``MatrixBatch -> Column``                each 2-D matrix (per head)
  (``per_kernel``)        ``KernelBatch -> Column``                each 4-D conv weight
``ReshapedConvMetric``    ``MatrixBatch -> Column``                each conv weight as (O, I*k*k)
``PooledMetric``          ``PooledStats -> Outcome``               all selected weights or biases
``TemporalMetric``        ``Comparison -> Outcome``                each matrix vs another version
``ActivationMetric``      ``(LayerOutput, params) -> Outcome``     each activation hook point
``InformationMetric``     ``InformationPoint -> Outcome``          each activation hook point
``HistogramMetric``       ``(LayerOutput, HistogramSpec) -> ...``  each activation hook point
========================  =======================================  ==============================

This module imports no torch, so the app's pages can read the registry cheaply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from dyntools.metrics.batch import Column, KernelBatch, MatrixBatch
from dyntools.metrics.histogram import TRANSFORMS, Histogram, HistogramSpec
from dyntools.metrics.records import (
    Comparison,
    InformationPoint,
    LayerOutput,
    PooledStats,
    Reason,
)

ParamValue = float | int | str
Params = Mapping[str, ParamValue]
# A value, or None with the reason (a reason may also qualify a NaN value).
Outcome = tuple[float | None, Reason | None]


class HookKind(StrEnum):
    """Weight hook points own tensors of a checkpoint; activation hook points are module outputs
    of the rebuilt model. A name such as ``fc1`` can be both, so the kind travels with it."""

    WEIGHT = "weight"
    ACTIVATION = "activation"


class MetricKind(StrEnum):
    MATRIX = "matrix"
    CONV = "conv"
    POOLED = "pooled"
    TEMPORAL = "temporal"
    ACTIVATION = "activation"
    INFORMATION = "information"
    HISTOGRAM = "histogram"

    @property
    def hook_kind(self) -> HookKind:
        return HookKind.ACTIVATION if self in _ACTIVATION_KINDS else HookKind.WEIGHT


_ACTIVATION_KINDS = frozenset({MetricKind.ACTIVATION, MetricKind.INFORMATION, MetricKind.HISTOGRAM})


class Pool(StrEnum):
    """Which tensors a pooled statistic pools: the weights (rank >= 2) or the biases."""

    WEIGHTS = "weights"
    BIASES = "biases"


class Against(StrEnum):
    """What a metric compares with: another checkpoint (temporal metrics), or the probe
    batch's inputs or targets (information-plane coordinates)."""

    PREVIOUS = "previous"
    INITIAL = "initial"
    INPUT = "input"
    TARGET = "target"


def compared_with(against: Against, first_step: int) -> str:
    """What a temporal metric compares the checkpoints of a run with, in words; ``first_step``:
    the run's first saved checkpoint (step 0 is the initialization, by dyntools' convention and
    every trainer's)."""
    if against is Against.PREVIOUS:
        return "the previous saved checkpoint"
    if first_step == 0:
        return "step 0 (the initialization)"
    return f"step {first_step} (the first saved checkpoint, not the initialization)"


@dataclass(frozen=True)
class Param:
    """A metric parameter, its default and what it means (stored with every value).

    ``minimum``/``maximum``: the range a number may take; ``choices``: the values a text may
    take (all checked before any work)."""

    name: str
    default: ParamValue
    description: str
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    maximum: float | None = None

    def parse(self, text: str, metric: str) -> ParamValue:
        """The value ``text`` (as typed on a command line) gives this parameter, checked."""
        kind = type(self.default)
        try:
            value = kind(text) if kind is not str else text
        except ValueError:
            raise ValueError(
                f"{metric} parameter {self.name!r} takes a {kind.__name__}, got {text!r}"
            ) from None
        return self.check(value, metric)

    def check(self, value: ParamValue, metric: str) -> ParamValue:
        if type(value) is not type(self.default) and not (
            isinstance(self.default, float) and isinstance(value, int)
        ):
            raise ValueError(
                f"{metric} parameter {self.name!r} takes a {type(self.default).__name__}, "
                f"got {value!r}"
            )
        if self.minimum is not None and not float(value) >= self.minimum:
            raise ValueError(f"{metric} {self.name} must be >= {self.minimum:g}, got {value!r}")
        if self.maximum is not None and not float(value) <= self.maximum:
            raise ValueError(f"{metric} {self.name} must be <= {self.maximum:g}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(
                f"{metric} {self.name} must be one of {list(self.choices)}, got {value!r}"
            )
        return float(value) if isinstance(self.default, float) else value


def params_key(params: Mapping[str, object] | None) -> str:
    """The canonical text of parameters ('' for none): the store's ``params`` column value."""
    if not params:
        return ""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class Metric:
    """One metric: a stable snake_case name, a one-line description (CLI help, app glossary),
    its parameters with defaults, and whether the reference code (visualizing-training) has it.
    Subclasses add the function that computes it."""

    metric_kind: ClassVar[MetricKind]
    name: str
    description: str
    params: tuple[Param, ...] = ()
    anchor: bool = False

    @property
    def hook_kind(self) -> HookKind:
        return self.metric_kind.hook_kind

    def resolve(self, given: Mapping[str, ParamValue] | None = None) -> dict[str, ParamValue]:
        """Every parameter's value: ``given`` over the defaults; an unknown name is an error."""
        given = dict(given or {})
        known = {param.name: param for param in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(
                f"metric {self.name!r} has no parameter {unknown}; "
                f"its parameters: {sorted(known) or 'none'}"
            )
        return {
            name: param.check(given[name], self.name) if name in given else param.default
            for name, param in known.items()
        }

    def params_key(self, given: Mapping[str, ParamValue] | None = None) -> str:
        """The stored ``params`` text of this metric with ``given`` parameters."""
        return params_key(self.resolve(given))


@dataclass(frozen=True, kw_only=True)
class MatrixMetric(Metric):
    """A metric of each 2-D matrix, from the batch's norms and singular values.

    ``per_kernel``: the reference's definition for a 4-D convolution weight (per-kernel norms
    averaged over the kernels); metrics without one are not computed for convolutions.
    """

    metric_kind: ClassVar[MetricKind] = MetricKind.MATRIX
    compute: Callable[[MatrixBatch], Column]
    needs_svd: bool = False
    per_kernel: Callable[[KernelBatch], Column] | None = None


@dataclass(frozen=True, kw_only=True)
class ReshapedConvMetric(Metric):
    """A matrix metric of a convolution weight reshaped to (O, I*kh*kw)."""

    metric_kind: ClassVar[MetricKind] = MetricKind.CONV
    compute: Callable[[MatrixBatch], Column]
    needs_svd: bool = False


@dataclass(frozen=True, kw_only=True)
class PooledMetric(Metric):
    """A statistic of every selected weight (or bias), concatenated."""

    metric_kind: ClassVar[MetricKind] = MetricKind.POOLED
    compute: Callable[[PooledStats], Outcome]
    pool: Pool


@dataclass(frozen=True, kw_only=True)
class TemporalMetric(Metric):
    """A metric of each matrix against its version in another checkpoint."""

    metric_kind: ClassVar[MetricKind] = MetricKind.TEMPORAL
    compute: Callable[[Comparison], Outcome]
    against: Against


@dataclass(frozen=True, kw_only=True)
class ActivationMetric(Metric):
    """A statistic of an activation hook point's output on the probe batch."""

    metric_kind: ClassVar[MetricKind] = MetricKind.ACTIVATION
    compute: Callable[[LayerOutput, Params], Outcome]


@dataclass(frozen=True, kw_only=True)
class InformationMetric(Metric):
    """An information-plane coordinate of an activation hook point: HSIC of its output with
    the probe inputs or targets, by the kernels of ``variant``."""

    metric_kind: ClassVar[MetricKind] = MetricKind.INFORMATION
    compute: Callable[[InformationPoint], Outcome]
    variant: str
    against: Against


@dataclass(frozen=True, kw_only=True)
class HistogramMetric(Metric):
    """A histogram of an activation hook point's output (stored as counts, not a value)."""

    metric_kind: ClassVar[MetricKind] = MetricKind.HISTOGRAM
    compute: Callable[[LayerOutput, HistogramSpec], Histogram]

    def spec(self, given: Mapping[str, ParamValue] | None = None) -> HistogramSpec:
        """The bin edges of this metric with ``given`` parameters."""
        values = self.resolve(given)
        transform = next((t for t in TRANSFORMS if t == values["on"]), None)
        if transform is None:
            raise ValueError(
                f"histogram 'on' must be one of {list(TRANSFORMS)}, got {values['on']!r}"
            )
        return HistogramSpec(
            bins=int(values["bins"]),
            low=float(values["low"]),
            high=float(values["high"]),
            transform=transform,
        )
