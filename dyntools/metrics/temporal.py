"""A matrix against its version in another checkpoint: the numbers temporal metrics read.

``relative_update`` = ||W_t - W_prev||_F / ||W_prev||_F (the previous *saved* checkpoint, not
the previous optimizer step) and ``cosine_to_init`` = <W_t, W_0> / (||W_t||_F ||W_0||_F) (the
run's first saved checkpoint: the initialization only where the run saved step 0) are functions
of a ``Comparison`` (``builtin``); this module computes it, in float64 (``kinds.compared_with`` says
in words what a checkpoint was compared with).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dyntools.metrics.finite import all_finite
from dyntools.metrics.records import Comparison, Reason, ReasonCode

_NAN = float("nan")


def missing(problem: Reason) -> Comparison:
    """A comparison that could not be made, and why."""
    return Comparison(_NAN, _NAN, _NAN, _NAN, problem)


def compare(
    current: torch.Tensor, other: torch.Tensor, what: str, stored: Sequence[torch.dtype] = ()
) -> Comparison:
    """Norms, difference norm and dot product of ``current`` and ``other`` (the ``what``
    checkpoint's version), or why they cannot be compared; ``stored``: the dtypes the two
    versions were saved in (their resolution bounds what a difference can mean)."""
    if other.shape != current.shape:
        return missing(
            Reason(
                ReasonCode.OTHER_VERSION,
                f"shape changed from {list(other.shape)} ({what}) to {list(current.shape)}",
            )
        )
    if not all_finite(other):
        return missing(Reason(ReasonCode.NONFINITE, f"the {what} version holds NaN/inf"))
    if not all_finite(current):
        return missing(Reason(ReasonCode.NONFINITE, "this version holds NaN/inf"))
    a, b = current.double().reshape(-1), other.double().reshape(-1)
    return Comparison(
        norm=float(torch.linalg.vector_norm(a)),
        other_norm=float(torch.linalg.vector_norm(b)),
        difference_norm=float(torch.linalg.vector_norm(a - b)),
        dot=float(torch.dot(a, b)),
        resolution=max((torch.finfo(dtype).eps for dtype in stored), default=0.0),
    )
