"""Per-matrix metrics of a batch of same-shape matrices, from one SVD per matrix.

The anchor metrics follow ``visualize_training.metrics.get_matrix_metrics`` (visualizing-training
1.0.0) and ``get_tensor_metrics`` for 4-D convolution weights; DESIGN.md section 4 lists where the
code and its docs differ. The extras reuse the same singular values (WeightWatcher's definitions,
eigenvalues lambda = sigma^2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# The reference sets singular values below this to zero (kept, not dropped).
SV_ZERO_THRESHOLD = 1e-5


@dataclass(frozen=True)
class MatrixBatch:
    """Shared intermediate results of B matrices; every field is float64 of shape (B,) or (B, k)."""

    l1: torch.Tensor
    l2: torch.Tensor
    trace: torch.Tensor
    # Largest singular value before zeroing (the reference's matrix_norm(ord=2)); None when no
    # selected metric needs the SVD.
    spectral: torch.Tensor | None
    # Singular values, descending, with values below SV_ZERO_THRESHOLD set to 0.
    singular_values: torch.Tensor | None


@dataclass(frozen=True)
class Column:
    """One metric for every matrix of a batch.

    Rows flagged ``undefined`` get no value (None) and ``reason``, unless ``keep_nan``: then the
    value stays NaN, as the reference returns it, and ``reason`` explains the NaN.
    """

    values: torch.Tensor
    undefined: torch.Tensor | None = None
    reason: str = ""
    keep_nan: bool = False


def singular_values(stack: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of each matrix of a (B, m, n) stack: one SVD per matrix.

    LAPACK's SVD on CPU is several times slower for wide matrices than for tall ones here
    (768 x 3072: 0.49 s, its transpose: 0.14 s), and transposing keeps the singular values, so a
    wide batch is passed as its (free) transposed view.
    """
    if stack.shape[-2] < stack.shape[-1]:
        stack = stack.transpose(-2, -1)
    values: torch.Tensor = torch.linalg.svdvals(stack)
    return values


def matrix_batch(stack: torch.Tensor, *, with_svd: bool) -> MatrixBatch:
    """Norms, trace and (if ``with_svd``) singular values of a (B, m, n) stack of finite matrices."""
    if stack.dim() != 3:
        raise ValueError(f"expected a (B, m, n) stack of matrices, got shape {list(stack.shape)}")
    f64 = torch.float64
    # Norms of each row, added up in float64: vector_norm over a whole float32 matrix
    # accumulates sequentially (3072 x 768: l1 off by 1e-4 relative, the reference included).
    l1 = torch.linalg.vector_norm(stack, ord=1, dim=2).to(f64).sum(dim=1)
    l2 = torch.linalg.vector_norm(stack, ord=2, dim=2).to(f64).square().sum(dim=1).sqrt()
    # torch.trace semantics: the main diagonal, also of a rectangular matrix.
    trace = stack.diagonal(dim1=1, dim2=2).sum(-1, dtype=f64)
    spectral = zeroed = None
    if with_svd:
        raw = singular_values(stack)
        spectral = raw[:, 0].to(f64)
        zeroed = raw.masked_fill(raw < SV_ZERO_THRESHOLD, 0.0).to(f64)
    return MatrixBatch(l1=l1, l2=l2, trace=trace, spectral=spectral, singular_values=zeroed)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # DESIGN.md: 0.0 when the divisor is 0 (the reference would raise ZeroDivisionError).
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)


def _svd(batch: MatrixBatch) -> tuple[torch.Tensor, torch.Tensor]:
    if batch.spectral is None or batch.singular_values is None:
        raise ValueError("this metric needs singular values: build the batch with with_svd=True")
    return batch.spectral, batch.singular_values


def _spectral(batch: MatrixBatch) -> Column:
    return Column(_svd(batch)[0])


def _computational_sparsity(batch: MatrixBatch) -> Column:
    return Column(_ratio(batch.trace, _svd(batch)[0]))


def _mean_sv(batch: MatrixBatch) -> Column:
    return Column(_svd(batch)[1].mean(dim=1))


def _var_sv(batch: MatrixBatch) -> Column:
    values = _svd(batch)[1]
    count = values.shape[1]
    if count < 2:
        # torch.var of one value is NaN (and warns); the reference stores that NaN.
        nan = torch.full((values.shape[0],), float("nan"), dtype=values.dtype)
        return Column(
            nan,
            torch.ones_like(nan, dtype=torch.bool),
            "one singular value: unbiased variance undefined (NaN, as in the reference)",
            keep_nan=True,
        )
    return Column(values.var(dim=1, correction=1))


def _zero_matrix(values: torch.Tensor, what: str) -> Column:
    return Column(values, torch.isinf(values) | torch.isnan(values), f"{what} of a zero matrix")


def _stable_rank(batch: MatrixBatch) -> Column:
    sv = _svd(batch)[1]
    top = sv[:, 0] ** 2
    total = (sv**2).sum(dim=1)
    undefined = top == 0
    safe = torch.where(undefined, torch.ones_like(top), top)
    return Column(total / safe, undefined, "stable rank of a zero matrix (0/0)")


def _log_frobenius(batch: MatrixBatch) -> Column:
    # sum(lambda) = sum(sigma^2) = ||W||_F^2 exactly, so no SVD is needed for this one.
    return _zero_matrix(torch.log10(batch.l2**2), "log10 of the Frobenius norm")


def _log_spectral(batch: MatrixBatch) -> Column:
    return _zero_matrix(torch.log10(_svd(batch)[0] ** 2), "log10 of the spectral norm")


def _effective_rank(batch: MatrixBatch) -> Column:
    # Roy & Vetterli (2007): exp of the entropy of the normalized singular values (0 log 0 = 0).
    sv = _svd(batch)[1]
    total = sv.sum(dim=1, keepdim=True)
    undefined = total[:, 0] == 0
    p = sv / torch.where(total == 0, torch.ones_like(total), total)
    entropy = -torch.special.xlogy(p, p).sum(dim=1)
    return Column(torch.exp(entropy), undefined, "effective rank of a zero matrix")


MatrixMetric = Callable[[MatrixBatch], Column]

# name -> (function, needs the SVD). Anchor metrics first, in the reference's order.
MATRIX_METRICS: dict[str, tuple[MatrixMetric, bool]] = {
    "l1": (lambda b: Column(b.l1), False),
    "l2": (lambda b: Column(b.l2), False),
    "trace": (lambda b: Column(b.trace), False),
    "spectral": (_spectral, True),
    "code_sparsity": (lambda b: Column(_ratio(b.l1, b.l2)), False),
    "computational_sparsity": (_computational_sparsity, True),
    "mean_singular_value": (_mean_sv, True),
    "var_singular_value": (_var_sv, True),
    "stable_rank": (_stable_rank, True),
    "log_frobenius": (_log_frobenius, False),
    "log_spectral": (_log_spectral, True),
    "effective_rank": (_effective_rank, True),
}

ANCHOR_MATRIX_METRICS = (
    "l1",
    "l2",
    "trace",
    "spectral",
    "code_sparsity",
    "computational_sparsity",
    "mean_singular_value",
    "var_singular_value",
)

# Spectral extras of a convolution weight reshaped to (O, I*kh*kw): "reshaped_" + matrix metric.
RESHAPED_PREFIX = "reshaped_"
RESHAPED_BASES = (
    "spectral",
    "mean_singular_value",
    "var_singular_value",
    "stable_rank",
    "log_frobenius",
    "log_spectral",
    "effective_rank",
)


def conv_kernel_metrics(stack: torch.Tensor) -> dict[str, Column]:
    """The reference's 4-D metrics of a (B, O, I, kh, kw) stack of finite convolution weights.

    Per-kernel norms over (kh, kw), averaged over the O*I kernels: ``l1``, ``l2`` and
    ``code_sparsity`` (mean of per-kernel l1/l2; 0.0 for an all-zero kernel, where the
    reference would give NaN).
    """
    if stack.dim() != 5:
        raise ValueError(f"expected a (B, O, I, kh, kw) stack, got shape {list(stack.shape)}")
    l1 = torch.linalg.vector_norm(stack, ord=1, dim=(3, 4)).flatten(1)
    l2 = torch.linalg.vector_norm(stack, ord=2, dim=(3, 4)).flatten(1)
    f64 = torch.float64
    return {
        "l1": Column(l1.mean(dim=1).to(f64)),
        "l2": Column(l2.mean(dim=1).to(f64)),
        "code_sparsity": Column(_ratio(l1, l2).mean(dim=1).to(f64)),
    }


CONV_KERNEL_METRICS = ("l1", "l2", "code_sparsity")
