"""The records metric functions read and return, and the tensor-source protocol they read from.

Every result is a tidy row: (scope, hook point, tensor, head, metric, value, reason). A value of
``None`` means the metric could not be computed and ``reason`` says why, with a code that code
can test (never the wording); nothing is dropped silently. This module imports no torch: the
app's pages read these records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: these records are read by code that never needs torch
    import torch


class Scope(StrEnum):
    """What a value describes: one matrix (``TENSOR``, per head when split), a hook point
    (the mean over the matrices below it), or the whole network (the mean over every selected
    matrix, and the statistics pooled over every selected weight and bias)."""

    TENSOR = "tensor"
    HOOK_POINT = "hook_point"
    NETWORK = "network"


class ReasonCode(StrEnum):
    """Why a value is missing (or, for a NaN the reference also gives, why it is NaN)."""

    NONFINITE = "nonfinite"  # the input holds NaN or inf
    UNDEFINED = "undefined"  # 0/0, log of 0, the variance of one value, a constant kernel
    EMPTY = "empty"  # nothing to compute on (an empty output, no tensors selected)
    NOT_FLOAT = "not-float"  # an integer or boolean tensor
    VECTOR = "vector"  # a 1-D tensor (a scale, a bias): no matrix metrics
    UNSUPPORTED_SHAPE = "unsupported-shape"  # a rank >= 3 tensor that is no convolution
    HEAD_SPLIT = "head-split"  # a tensor that cannot be split into the heads asked for
    NO_PREVIOUS = "no-previous"  # the first checkpoint has no previous one
    OTHER_VERSION = "other-version"  # the compared checkpoint lacks the tensor or changed it
    SVD_FAILED = "svd-failed"  # LAPACK did not converge
    NO_OUTPUT = "no-output"  # a module produced no tensor in the forward pass
    INCOMPLETE = "incomplete"  # a second pass was needed but not possible
    ROUNDING = "rounding"  # a kept value: a difference below the stored dtype's resolution
    FAILED = "failed"  # the checkpoint (or run) could not be read or computed at all


# Gaps every run has by construction: reported as notes, not as problems.
EXPECTED: frozenset[ReasonCode] = frozenset({ReasonCode.NO_PREVIOUS, ReasonCode.VECTOR})


@dataclass(frozen=True)
class Reason:
    """Why a value is missing: a code to act on and a message for people."""

    code: ReasonCode
    message: str

    @property
    def expected(self) -> bool:
        """Whether every run has this gap by construction (the first checkpoint has no
        previous one; a LayerNorm scale has no singular values)."""
        return self.code in EXPECTED


@dataclass(frozen=True)
class MetricValue:
    """One tidy row. ``value`` is None when the metric is missing; ``reason`` then says why.

    ``reason`` may also accompany a real value to qualify it (``var_singular_value`` is NaN,
    as in the reference, when a matrix has a single singular value). ``head`` is the attention
    head of a matrix split per head, None otherwise; ``component`` is ``q``, ``k`` or ``v`` of
    a fused Q/K/V tensor, '' otherwise. Network-scope rows have no hook point or tensor ('').
    """

    scope: Scope
    hook_point: str
    tensor: str
    head: int | None
    metric: str
    value: float | None
    reason: Reason | None = None
    component: str = ""


@dataclass(frozen=True)
class SkippedTensor:
    """A selected tensor that got no per-matrix metrics, and why (e.g. a 1-D LayerNorm scale)."""

    tensor: str
    reason: Reason


@dataclass(frozen=True)
class PooledStats:
    """Mean, unbiased variance and lower median of a pooled set; None values carry ``reason``."""

    count: int
    mean: float | None
    var: float | None
    median: float | None
    reason: Reason | None = None


@dataclass(frozen=True)
class Comparison:
    """A tensor (flattened, float64) against another checkpoint's version of it: the numbers
    the temporal metrics need, or why there is no comparison."""

    norm: float  # ||W_t||
    other_norm: float  # ||W_other||
    difference_norm: float  # ||W_t - W_other||
    dot: float  # <W_t, W_other>
    problem: Reason | None = None
    # The relative resolution (machine epsilon) of the coarser stored dtype of the two versions:
    # a relative difference below it is mostly rounding (bf16: 7.8e-3, fp16: 9.8e-4).
    resolution: float = 0.0


@dataclass(frozen=True)
class InformationPoint:
    """HSIC(H, X) and HSIC(H, Y) of one layer at one checkpoint; None with ``reason`` if undefined."""

    hsic_x: float | None
    hsic_y: float | None
    reason: Reason | None = None


@dataclass(frozen=True)
class LayerOutput:
    """One activation hook point's output on the probe batch: every finite value, flattened, in
    float64 (``values``), with how many values the output had and how many were NaN/inf."""

    values: torch.Tensor
    count: int
    nonfinite: int


class TensorSource(Protocol):
    """Anything that can tell a tensor's shape without reading it, and read it on demand.

    The checkpoint readers provide this; reading one tensor at a time keeps memory bounded.
    """

    def shape(self, name: str) -> tuple[int, ...]: ...

    def read(self, name: str) -> torch.Tensor: ...


class MappingSource:
    """A ``TensorSource`` over tensors already in memory (a state dict)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._tensors = dict(tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._lookup(name).shape)

    def read(self, name: str) -> torch.Tensor:
        return self._lookup(name)

    def _lookup(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            known = ", ".join(sorted(self._tensors)[:10])
            raise KeyError(f"no tensor named {name!r}; known (first 10): {known}") from None
