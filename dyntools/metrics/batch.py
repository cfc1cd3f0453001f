"""What the matrix metrics read: a few numbers per matrix of a batch, already on the host.

``spectrum.matrix_batch`` (torch) reduces a stack of B same-shape matrices to these float64
arrays once; every matrix metric is then a small numpy function of them (``builtin``), whose
per-call cost on arrays this small is a fraction of torch's (it dominated checkpoints of small
models). This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dyntools.metrics.records import Reason

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]

# The reference sets singular values below this to zero (kept, not dropped).
SV_ZERO_THRESHOLD = 1e-5


@dataclass(frozen=True)
class MatrixBatch:
    """Shared intermediate results of B matrices: float64 arrays of shape (B,) or (B, k)."""

    l1: Floats
    l2: Floats
    trace: Floats
    # Largest singular value before zeroing (the reference's matrix_norm(ord=2)); None when no
    # selected metric needs the SVD.
    spectral: Floats | None
    # Singular values, descending, with values below SV_ZERO_THRESHOLD set to 0.
    singular_values: Floats | None

    def svd(self) -> tuple[Floats, Floats]:
        """(spectral, zeroed singular values); raises when the batch was built without them."""
        if self.spectral is None or self.singular_values is None:
            raise ValueError("this metric needs singular values: build the batch with with_svd")
        return self.spectral, self.singular_values


@dataclass(frozen=True)
class KernelBatch:
    """Per-kernel norms of B convolution weights (O, I, kh, kw): L1 and L2 over (kh, kw) of each
    of the O*I kernels, shape (B, O*I), as the reference computes them for 4-D weights."""

    l1: Floats
    l2: Floats


@dataclass(frozen=True)
class Column:
    """One metric for every matrix of a batch.

    Rows flagged ``undefined`` get no value (None) and ``reason``, unless ``keep_nan``: then the
    value stays NaN, as the reference returns it, and ``reason`` explains the NaN.
    """

    values: Floats
    undefined: Flags | None = None
    reason: Reason | None = None
    keep_nan: bool = False


def ratio(numerator: Floats, denominator: Floats) -> Floats:
    """numerator / denominator, 0.0 where the divisor is 0 (docs/metrics.md: the reference
    would raise ZeroDivisionError)."""
    zero = denominator == 0
    return np.asarray(np.where(zero, 0.0, numerator / np.where(zero, 1.0, denominator)))
