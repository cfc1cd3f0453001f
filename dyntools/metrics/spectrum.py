"""The tensor work behind the matrix metrics: norms, traces and one SVD per matrix of a batch.

``matrix_batch`` reduces a (B, m, n) stack to a ``MatrixBatch`` of a few float64 numbers per
matrix on the host, and ``kernel_batch`` a stack of convolution weights to per-kernel norms; the
metrics themselves are numpy functions of those (``builtin``, docs/metrics.md).
"""

from __future__ import annotations

import numpy as np
import torch

from dyntools.metrics.batch import SV_ZERO_THRESHOLD, Floats, KernelBatch, MatrixBatch


def singular_values(stack: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of each matrix of a (B, m, n) stack: one SVD per matrix.

    LAPACK's SVD on CPU is several times slower for wide matrices than for tall ones here
    (768 x 3072: 0.49 s, its transpose: 0.14 s), and transposing keeps the singular values, so a
    wide batch is passed as its (free) transposed view. LAPACK reads column-major matrices, and
    torch copies any other layout into one first: a stack built column-major
    (``weights._stack``) saves that transposing copy (a 50304 x 512 matrix: 0.58 s instead of
    0.76 s on one thread, the same singular values bit for bit).
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
# Values per row of the norms' float32 reductions (rows are then added up in float64): float32
# vector_norm accumulates a row sequentially, and its sum of squares drifts low with the row's
# length (5e-7 relative at 1024 values, 1e-7 at 256, measured; tests/test_metrics_precision.py).
_WIDTH = 256


def _row_l1(rows: torch.Tensor) -> torch.Tensor:
    """l1 norm of every row of a (B, r, w) tensor, in its dtype.

    vector_norm(ord=1) runs about 10x slower than abs().sum() on small CPU stacks (90 us
    against 9 us for 12 x 64 x 16), but needs no copy, which is faster on large ones.
    """
    found: torch.Tensor = (
        rows.abs().sum(dim=2)
        if rows.numel() <= _SMALL_STACK
        else torch.linalg.vector_norm(rows, ord=1, dim=2)
    )
    return found


def _rows(stack: torch.Tensor) -> list[torch.Tensor]:
    """Each matrix's values in memory order (whichever layout the stack has: row-major,
    column-major), as (B, r, ``_WIDTH``) rows and a (B, 1, rest) remainder: l1 and l2 are sums
    over every value, so the order does not matter, and contiguous rows reduce fastest."""
    count = stack.shape[0]
    if stack.is_contiguous():
        flat = stack.reshape(count, -1)
    elif stack.mT.is_contiguous():
        flat = stack.mT.reshape(count, -1)
    else:
        flat = stack.reshape(count, -1)  # a copy
    whole = flat.shape[1] // _WIDTH * _WIDTH
    parts = [flat[:, :whole].reshape(count, -1, _WIDTH), flat[:, whole:].reshape(count, 1, -1)]
    return [part for part in parts if part.numel()]


def matrix_l1(stack: torch.Tensor) -> Floats:
    """l1 norm (sum of |w|) of each matrix of a stack, in float64; NaN or inf where a matrix
    holds NaN or inf (or, only for values near the float32 maximum, where the sum overflows)."""
    stack = stack.detach()
    total = np.zeros(stack.shape[0])
    for rows in _rows(stack):
        total += _host(_row_l1(rows)).sum(axis=1)
    return total


def matrix_batch(stack: torch.Tensor, *, with_svd: bool, l1: Floats | None = None) -> MatrixBatch:
    """Norms, trace and (if ``with_svd``) singular values of a (B, m, n) stack of finite matrices
    (``l1``: their ``matrix_l1``, when already known)."""
    if stack.dim() != 3:
        raise ValueError(f"expected a (B, m, n) stack of matrices, got shape {list(stack.shape)}")
    stack = stack.detach()
    # Norms of rows of 256 values, added up in float64: vector_norm over a whole float32
    # matrix accumulates sequentially (3072 x 768: l1 off by 1e-4 relative, the reference
    # included).
    if l1 is None:
        l1 = matrix_l1(stack)
    squares = np.zeros(stack.shape[0])
    for rows in _rows(stack):
        squares += np.square(_host(torch.linalg.vector_norm(rows, ord=2, dim=2))).sum(axis=1)
    l2 = np.sqrt(squares)
    # torch.trace semantics: the main diagonal, also of a rectangular matrix.
    trace = _host(stack.diagonal(dim1=1, dim2=2)).sum(axis=-1)
    spectral = zeroed = None
    if with_svd:
        raw = _host(singular_values(stack))
        spectral = raw[:, 0].copy()
        zeroed = np.where(raw < SV_ZERO_THRESHOLD, 0.0, raw)
    return MatrixBatch(l1=l1, l2=l2, trace=trace, spectral=spectral, singular_values=zeroed)


def kernel_batch(stack: torch.Tensor) -> KernelBatch:
    """Per-kernel L1 and L2 norms of a (B, O, I, *kernel) stack of finite convolution weights
    (Conv1d, Conv2d or Conv3d): over the kernel's own axes, as the reference's 4-D metrics read
    them."""
    if stack.dim() < 4:
        raise ValueError(f"expected a (B, O, I, *kernel) stack, got shape {list(stack.shape)}")
    stack = stack.detach()
    kernel = tuple(range(3, stack.dim()))
    return KernelBatch(
        l1=_host(torch.linalg.vector_norm(stack, ord=1, dim=kernel).flatten(1)),
        l2=_host(torch.linalg.vector_norm(stack, ord=2, dim=kernel).flatten(1)),
    )
