"""Records the metric functions return, and the tensor-source protocol they read from.

Every result is a tidy row: (hook point, tensor, metric, value, reason). A value of ``None`` means
the metric could not be computed and ``reason`` says why; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: these records are read by code that never needs torch
    import torch

# Hook point and tensor labels of rows that pool or average over every selected tensor.
ALL_HOOK_POINTS = "(all)"
POOLED_TENSOR = "(pooled)"
PAPER_FEATURES_TENSOR = "(paper features)"


@dataclass(frozen=True)
class MetricValue:
    """One tidy row. ``value`` is None when the metric is missing; ``reason`` then says why.

    ``reason`` may also accompany a real value to qualify it (``var_singular_value`` is NaN,
    as in the reference, when a matrix has a single singular value).
    """

    hook_point: str
    tensor: str
    metric: str
    value: float | None
    reason: str | None = None


@dataclass(frozen=True)
class SkippedTensor:
    """A selected tensor that got no per-matrix metrics, and why (e.g. a 1-D LayerNorm scale)."""

    tensor: str
    reason: str


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
