"""HSIC of a layer's representation with the input and the labels (the information plane).

Gaussian kernel K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2)) over the m probe samples. Squared
distances come from the Gram matrix of the column-centred samples (O(m^2 d) time, O(m^2) memory,
no m x m x d tensor), built in float64 from column blocks so that wide layers need no float64
copy of the whole representation. Kernels are centred with row and column means (O(m^2)), never
with m x m matrix products.

Integer probe tensors (token ids, class indices) are codes, not coordinates: they enter a kernel
one-hot per position (``Coding.ONE_HOT``), so two samples are 2 x (positions that differ) apart
and the integers' order and size mean nothing. Real tensors enter as values (``Coding.VALUES``).

Two variants (docs/metrics.md, "Information plane"):

- ``normalized`` (default): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with Y the labels (one-hot
  for integer labels) and sigma from the median heuristic per representation (sigma^2 = median
  of the pairwise squared distances), so values lie in [0, 1] and do not saturate for wide
  layers. A number instead of "median" is a scale sigma0 with sigma^2 = sigma0^2 * d (d = that
  representation's width; the number of positions for one-hot codes).
- ``pyglow``: PyGlow 0.1.7's ``HSIC("gaussian", sigma=5)`` criterion: sigma = 5 unscaled, Y the
  model's output as PyGlow's networks give it (softmax probabilities; ``OUTPUTS``), value
  tr(K_X C K_Y C) / (m - 1). It saturates for wide layers; for comparison.

``InformationPlane`` builds the X and Y kernels once per checkpoint and reuses them per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from dyntools.metrics.finite import all_finite
from dyntools.metrics.hsic_inputs import (
    AUTO_CODING,
    LOGITS,
    NORMALIZED,
    PYGLOW,
    SOFTMAX,
    VARIANTS,
    Coding,
)
from dyntools.metrics.kinds import ParamValue
from dyntools.metrics.records import InformationPoint, Reason, ReasonCode

Sigma = float | Literal["median"]
PYGLOW_SIGMA = 5.0
DEFAULT_VARIANT = NORMALIZED
# Float64 column blocks of the representation are at most this large while building the Gram.
GRAM_BLOCK_BYTES = 4 * 2**20
# Elements of the (m, m, positions) comparison of codes made at once.
CODE_BLOCK_ELEMENTS = 2**24


def coding_of(samples: torch.Tensor) -> Coding:
    """One-hot codes for integer (and boolean) tensors, values for real ones."""
    return Coding.VALUES if samples.is_floating_point() else Coding.ONE_HOT


def resolve_coding(asked: ParamValue, samples: torch.Tensor, what: str) -> Coding:
    """The coding ``asked`` for (``auto``: ``coding_of``); one-hot codes of real values are an
    error, since they have no positions to compare."""
    if asked == AUTO_CODING:
        return coding_of(samples)
    coding = Coding(str(asked))
    if coding is Coding.ONE_HOT and samples.is_floating_point():
        raise ValueError(
            f"the probe's {what} are real values ({samples.dtype}), not integer codes: "
            f"use {Coding.VALUES.value!r} (or {AUTO_CODING!r})"
        )
    return coding


def code_distances(codes: torch.Tensor) -> torch.Tensor:
    """(m, m) float64 squared distances of integer ``codes`` (m, ...) one-hot encoded per
    position: 2 x the number of positions where two samples differ (no one-hot tensor built)."""
    flat = codes.detach().reshape(codes.shape[0], -1)
    m, positions = flat.shape
    differ = torch.zeros(m, m, dtype=torch.float64)
    step = max(1, CODE_BLOCK_ELEMENTS // max(1, m * m))
    for start in range(0, positions, step):
        block = flat[:, start : start + step]
        differ += (block[:, None, :] != block[None, :, :]).sum(dim=-1)
    return 2.0 * differ


def probabilities(output: torch.Tensor) -> torch.Tensor:
    """The probabilities a classifier's ``output`` (m, ..., classes) stands for: softmax over
    the last dimension; a single output column is a two-class logit (sigmoid)."""
    logits = output.to(torch.float64)
    if logits.dim() < 2 or logits.shape[-1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


# What of the model's output the PyGlow variant's Y is, by name.
OUTPUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    SOFTMAX: probabilities,
    LOGITS: lambda output: output.to(torch.float64),
}


def resolved_params(
    params: Mapping[str, ParamValue], x: torch.Tensor, y: torch.Tensor
) -> dict[str, ParamValue]:
    """An information metric's parameters with ``auto`` codings replaced by what the probe's
    inputs ``x`` and labels ``y`` get: the stored parameters say how each value was made."""
    tensors = {"inputs": x, "labels": y}
    return {
        name: resolve_coding(value, tensors[name], name).value if name in tensors else value
        for name, value in params.items()
    }


def squared_distances(samples: torch.Tensor) -> torch.Tensor:
    """(m, m) float64 matrix of ||a_i - a_j||^2 over the rows of ``samples`` (m, ...)."""
    if samples.dim() < 1 or samples.shape[0] < 1:
        raise ValueError(f"need at least one sample, got shape {list(samples.shape)}")
    flat = samples.detach().reshape(samples.shape[0], -1)
    m, d = flat.shape
    gram = torch.zeros(m, m, dtype=torch.float64)
    step = max(1, GRAM_BLOCK_BYTES // (8 * m))
    for start in range(0, d, step):
        block = flat[:, start : start + step].to(torch.float64, copy=True)
        # Centring the columns leaves distances unchanged and avoids cancellation in
        # |a_i|^2 + |a_j|^2 - 2 a_i.a_j when the samples share a large offset (post-ReLU).
        block.sub_(block.mean(dim=0, keepdim=True))
        gram.addmm_(block, block.T)
    norms = gram.diagonal().clone()
    distances = (norms[:, None] + norms[None, :] - 2.0 * gram).clamp_min_(0.0)
    distances.fill_diagonal_(0.0)
    return distances


def median_sigma2(distances: torch.Tensor) -> float:
    """Median heuristic: the (lower) median of the pairwise squared distances i < j.

    When more than half the pairs coincide (e.g. few classes), the mean of the non-zero
    distances is used instead; 0.0 means every sample is the same.
    """
    m = distances.shape[0]
    if m < 2:
        return 0.0
    i, j = torch.triu_indices(m, m, offset=1)
    pairs = distances[i, j]
    median = float(pairs.median())
    if median > 0:
        return median
    nonzero = pairs[pairs > 0]
    return float(nonzero.mean()) if nonzero.numel() else 0.0


def gaussian_kernel(distances: torch.Tensor, sigma2: float) -> torch.Tensor:
    """exp(-D / (2 sigma^2)) from squared distances D."""
    if not sigma2 > 0:
        raise ValueError(f"kernel width sigma^2 must be > 0, got {sigma2}")
    return torch.exp(distances / (-2.0 * sigma2))


def center(kernel: torch.Tensor) -> torch.Tensor:
    """C K C with C = I - 11^T/m, from row and column means (no m x m products)."""
    rows = kernel.mean(dim=1, keepdim=True)
    cols = kernel.mean(dim=0, keepdim=True)
    return kernel - rows - cols + kernel.mean()


def pyglow_hsic(a: torch.Tensor, b: torch.Tensor, sigma: float = PYGLOW_SIGMA) -> float:
    """PyGlow's HSIC criterion of two sample sets: tr(K_a C K_b C) / (m - 1), sigma unscaled."""
    m = _samples(a, b)
    sigma2 = sigma * sigma
    ka = center(gaussian_kernel(squared_distances(a), sigma2))
    kb = gaussian_kernel(squared_distances(b), sigma2)
    return float((ka * kb).sum()) / (m - 1)


@dataclass(frozen=True)
class _Reference:
    """A centred kernel and its HSIC with itself (the normalizer), or why it is degenerate."""

    raw: torch.Tensor
    centred: torch.Tensor
    self_hsic: float
    problem: Reason | None


class InformationPlane:
    """The X and Y kernels of one checkpoint's probe batch, reused for every layer.

    ``x``: the probe inputs (m, ...). ``y``: for ``normalized``, the labels; for ``pyglow``, what
    of the model's output Y is (``OUTPUTS``). ``x_coding``/``y_coding``: how they enter their
    kernels (default: ``coding_of``, one-hot for integer tensors). ``sigma``: "median" or sigma0
    (sigma^2 = sigma0^2 * d) for ``normalized``; the unscaled sigma (default 5) for ``pyglow``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        variant: str = DEFAULT_VARIANT,
        sigma: Sigma | None = None,
        x_coding: Coding | None = None,
        y_coding: Coding | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown HSIC variant {variant!r}; known: {list(VARIANTS)}")
        self.variant = variant
        self.sigma: Sigma = sigma if sigma is not None else self._default_sigma(variant)
        if variant == PYGLOW and not isinstance(self.sigma, float | int):
            raise ValueError("the pyglow variant takes a fixed sigma (PyGlow's default is 5.0)")
        self.m = _samples(x, y)
        self.x_coding = resolve_coding(x_coding or AUTO_CODING, x, "inputs")
        self.y_coding = resolve_coding(y_coding or AUTO_CODING, y, "targets")
        self._x = self._reference(x, "input X", self.x_coding)
        self._y = self._reference(y, "target Y", self.y_coding)

    @staticmethod
    def _default_sigma(variant: str) -> Sigma:
        return "median" if variant == NORMALIZED else PYGLOW_SIGMA

    def _kernel(self, samples: torch.Tensor, coding: Coding) -> tuple[torch.Tensor, Reason | None]:
        if coding is Coding.ONE_HOT:
            distances = code_distances(samples)
        elif not all_finite(samples):
            return torch.empty(0), Reason(ReasonCode.NONFINITE, "holds NaN/inf")
        else:
            distances = squared_distances(samples)
        if self.sigma == "median":
            sigma2 = median_sigma2(distances)
        elif self.variant == PYGLOW:
            sigma2 = float(self.sigma) ** 2
        else:  # the width: features of values, positions of codes
            width = samples.reshape(samples.shape[0], -1).shape[1]
            sigma2 = float(self.sigma) ** 2 * width
        if sigma2 == 0:
            return torch.ones_like(distances), Reason(
                ReasonCode.UNDEFINED, "is the same for every probe sample"
            )
        return gaussian_kernel(distances, sigma2), None

    def _reference(self, samples: torch.Tensor, what: str, coding: Coding) -> _Reference:
        raw, problem = self._kernel(samples, coding)
        if problem is not None and raw.numel() == 0:
            return _Reference(raw, raw, math.nan, _about(what, problem))
        centred = center(raw)
        self_hsic = float((centred * centred).sum())
        if self.variant == NORMALIZED and self_hsic <= 0:
            problem = problem or Reason(ReasonCode.UNDEFINED, "has a constant kernel")
            return _Reference(raw, centred, self_hsic, _about(what, problem))
        return _Reference(raw, centred, self_hsic, None)

    def hsic(self, h: torch.Tensor) -> InformationPoint:
        """HSIC(H, X) and HSIC(H, Y) of one layer's output H (m, ...) on the probe batch."""
        if h.shape[0] != self.m:
            raise ValueError(f"layer output has {h.shape[0]} samples, the probe batch has {self.m}")
        layer = self._reference(h, "layer output", Coding.VALUES)
        (x, x_why), (y, y_why) = (self._value(layer, other) for other in (self._x, self._y))
        return InformationPoint(x, y, x_why or y_why)

    def _value(self, layer: _Reference, other: _Reference) -> tuple[float | None, Reason | None]:
        problem = layer.problem or other.problem
        if self.variant == PYGLOW:
            if layer.raw.numel() == 0 or other.raw.numel() == 0:
                return None, problem
            return float((layer.centred * other.raw).sum()) / (self.m - 1), None
        if problem is not None:
            return None, problem
        cross = float((layer.centred * other.centred).sum())
        return cross / math.sqrt(layer.self_hsic * other.self_hsic), None


def _samples(a: torch.Tensor, b: torch.Tensor) -> int:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"sample counts differ: {a.shape[0]} vs {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"HSIC needs at least 2 samples, got {a.shape[0]}")
    return int(a.shape[0])


def _about(what: str, problem: Reason) -> Reason:
    return Reason(problem.code, f"{what} {problem.message}")
