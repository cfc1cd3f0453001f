"""Per-matrix metrics of a batch of same-shape matrices, from one SVD per matrix.

The anchor metrics follow ``visualize_training.metrics.get_matrix_metrics`` (visualizing-training
1.0.0) and ``get_tensor_metrics`` for 4-D convolution weights; DESIGN.md section 4 lists where the
code and its docs differ. The extras reuse the same singular values (WeightWatcher's definitions,
eigenvalues lambda = sigma^2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

# The metric names live in the registry, which must not import torch.

# The reference sets singular values below this to zero (kept, not dropped).
SV_ZERO_THRESHOLD = 1e-5

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MatrixBatch:
    """Shared intermediate results of B matrices, on the host: float64 arrays of shape (B,) or
    (B, k).

    Only the reductions over the matrices run in torch (on the matrices' device); everything
    derived from these few numbers per matrix runs in numpy, whose per-call cost on arrays this
    small is a fraction of torch's (it dominated checkpoints of small models).
    """

    l1: Floats
    l2: Floats
    trace: Floats
    # Largest singular value before zeroing (the reference's matrix_norm(ord=2)); None when no
    # selected metric needs the SVD.
    spectral: Floats | None
    # Singular values, descending, with values below SV_ZERO_THRESHOLD set to 0.
    singular_values: Floats | None


@dataclass(frozen=True)
class Column:
    """One metric for every matrix of a batch.

    Rows flagged ``undefined`` get no value (None) and ``reason``, unless ``keep_nan``: then the
    value stays NaN, as the reference returns it, and ``reason`` explains the NaN.
    """

    values: Floats
    undefined: Flags | None = None
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


def _host(tensor: torch.Tensor) -> Floats:
    """A small result tensor as a float64 numpy array (copied from the GPU if it is there)."""
    return tensor.detach().cpu().numpy().astype(np.float64)


# Stacks up to this many values get their l1 row norms from an abs() copy (at most 4 MB).
_SMALL_STACK = 1 << 20


def _row_l1(stack: torch.Tensor) -> torch.Tensor:
    """l1 norm of every row of a (B, m, n) stack, in the stack's dtype.

    vector_norm(ord=1) runs about 10x slower than abs().sum() on small CPU stacks (90 us
    against 9 us for 12 x 64 x 16), but needs no copy, which is faster on large ones.
    """
    rows: torch.Tensor = (
        stack.abs().sum(dim=2)
        if stack.numel() <= _SMALL_STACK
        else torch.linalg.vector_norm(stack, ord=1, dim=2)
    )
    return rows


def matrix_batch(stack: torch.Tensor, *, with_svd: bool) -> MatrixBatch:
    """Norms, trace and (if ``with_svd``) singular values of a (B, m, n) stack of finite matrices."""
    if stack.dim() != 3:
        raise ValueError(f"expected a (B, m, n) stack of matrices, got shape {list(stack.shape)}")
    stack = stack.detach()
    # Norms of each row, added up in float64: vector_norm over a whole float32 matrix
    # accumulates sequentially (3072 x 768: l1 off by 1e-4 relative, the reference included).
    l1 = _host(_row_l1(stack)).sum(axis=1)
    l2 = np.sqrt(np.square(_host(torch.linalg.vector_norm(stack, ord=2, dim=2))).sum(axis=1))
    # torch.trace semantics: the main diagonal, also of a rectangular matrix.
    trace = _host(stack.diagonal(dim1=1, dim2=2)).sum(axis=-1)
    spectral = zeroed = None
    if with_svd:
        raw = _host(singular_values(stack))
        spectral = raw[:, 0].copy()
        zeroed = np.where(raw < SV_ZERO_THRESHOLD, 0.0, raw)
    return MatrixBatch(l1=l1, l2=l2, trace=trace, spectral=spectral, singular_values=zeroed)


def _ratio(numerator: Floats, denominator: Floats) -> Floats:
    # DESIGN.md: 0.0 when the divisor is 0 (the reference would raise ZeroDivisionError).
    zero = denominator == 0
    return np.where(zero, 0.0, numerator / np.where(zero, 1.0, denominator))


def _svd(batch: MatrixBatch) -> tuple[Floats, Floats]:
    if batch.spectral is None or batch.singular_values is None:
        raise ValueError("this metric needs singular values: build the batch with with_svd=True")
    return batch.spectral, batch.singular_values


def _spectral(batch: MatrixBatch) -> Column:
    return Column(_svd(batch)[0])


def _computational_sparsity(batch: MatrixBatch) -> Column:
    return Column(_ratio(batch.trace, _svd(batch)[0]))


def _mean_sv(batch: MatrixBatch) -> Column:
    return Column(_svd(batch)[1].mean(axis=1))


def _var_sv(batch: MatrixBatch) -> Column:
    values = _svd(batch)[1]
    count = values.shape[1]
    if count < 2:
        # torch.var of one value is NaN (and warns); the reference stores that NaN.
        return Column(
            np.full(values.shape[0], np.nan),
            np.ones(values.shape[0], dtype=np.bool_),
            "one singular value: unbiased variance undefined (NaN, as in the reference)",
            keep_nan=True,
        )
    # np.var, spelled out: its generic path costs more than the arithmetic on arrays this small.
    centred = values - values.mean(axis=1, keepdims=True)
    return Column(np.square(centred).sum(axis=1) / (count - 1))


def _log10_or_nan(values: Floats) -> tuple[Floats, Flags]:
    # log10(0) is -inf; such rows are flagged undefined instead of raising numpy's warning.
    undefined = values <= 0
    safe = np.where(undefined, 1.0, values)
    return np.where(undefined, np.nan, np.log10(safe)), undefined


def _stable_rank(batch: MatrixBatch) -> Column:
    sv = _svd(batch)[1]
    top = sv[:, 0] ** 2
    total = (sv**2).sum(axis=1)
    undefined = top == 0
    return Column(_ratio(total, top), undefined, "stable rank of a zero matrix (0/0)")


def _log_frobenius(batch: MatrixBatch) -> Column:
    # sum(lambda) = sum(sigma^2) = ||W||_F^2 exactly, so no SVD is needed for this one.
    values, undefined = _log10_or_nan(batch.l2**2)
    return Column(values, undefined, "log10 of the Frobenius norm of a zero matrix")


def _log_spectral(batch: MatrixBatch) -> Column:
    values, undefined = _log10_or_nan(_svd(batch)[0] ** 2)
    return Column(values, undefined, "log10 of the spectral norm of a zero matrix")


def _effective_rank(batch: MatrixBatch) -> Column:
    # Roy & Vetterli (2007): exp of the entropy of the normalized singular values (0 log 0 = 0).
    sv = _svd(batch)[1]
    total = sv.sum(axis=1, keepdims=True)
    p = _ratio(sv, total)
    logs = np.log(np.where(p > 0, p, 1.0))
    entropy = -(p * logs).sum(axis=1)
    return Column(np.exp(entropy), total[:, 0] == 0, "effective rank of a zero matrix")


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


def conv_kernel_metrics(stack: torch.Tensor) -> dict[str, Column]:
    """The reference's 4-D metrics of a (B, O, I, kh, kw) stack of finite convolution weights.

    Per-kernel norms over (kh, kw), averaged over the O*I kernels: ``l1``, ``l2`` and
    ``code_sparsity`` (mean of per-kernel l1/l2; 0.0 for an all-zero kernel, where the
    reference would give NaN).
    """
    if stack.dim() != 5:
        raise ValueError(f"expected a (B, O, I, kh, kw) stack, got shape {list(stack.shape)}")
    stack = stack.detach()
    l1 = _host(torch.linalg.vector_norm(stack, ord=1, dim=(3, 4)).flatten(1))
    l2 = _host(torch.linalg.vector_norm(stack, ord=2, dim=(3, 4)).flatten(1))
    return {
        "l1": Column(l1.mean(axis=1)),
        "l2": Column(l2.mean(axis=1)),
        "code_sparsity": Column(_ratio(l1, l2).mean(axis=1)),
    }


CONV_KERNEL_METRICS = ("l1", "l2", "code_sparsity")
