"""Metrics of a tensor against another checkpoint's version of it.

``relative_update`` = ||W_t - W_prev||_F / ||W_prev||_F (previous checkpoint);
``cosine_to_init`` = <W_t, W_0> / (||W_t||_F ||W_0||_F) (first checkpoint). Both in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dyntools.metrics.finite import all_finite

# (value, reason): value None means missing, and reason says why.
Outcome = tuple[float | None, str | None]


def _check(current: torch.Tensor, other: torch.Tensor | None, what: str) -> str | None:
    if other is None:
        return f"no {what} version of this tensor"
    if other.shape != current.shape:
        return f"shape changed from {list(other.shape)} ({what}) to {list(current.shape)}"
    if not all_finite(other):
        return f"the {what} version holds NaN/inf"
    if not all_finite(current):
        return "this version holds NaN/inf"
    return None


def relative_update(current: torch.Tensor, previous: torch.Tensor | None) -> Outcome:
    """||current - previous||_F / ||previous||_F; None (with why) when undefined."""
    problem = _check(current, previous, "previous")
    if problem is not None or previous is None:
        return None, problem
    base = torch.linalg.vector_norm(previous.double())
    if float(base) == 0.0:
        return None, "previous version is all zeros (division by 0)"
    change = torch.linalg.vector_norm(current.double() - previous.double())
    return float(change / base), None


def cosine_to_init(current: torch.Tensor, initial: torch.Tensor | None) -> Outcome:
    """Cosine similarity of the flattened tensor with its first-checkpoint version."""
    problem = _check(current, initial, "initial")
    if problem is not None or initial is None:
        return None, problem
    a, b = current.double().reshape(-1), initial.double().reshape(-1)
    norms = torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)
    if float(norms) == 0.0:
        return None, "a zero tensor has no direction"
    return float(torch.dot(a, b) / norms), None


TemporalMetric = Callable[[torch.Tensor, torch.Tensor | None], Outcome]

# name -> (function, which other checkpoint it compares with: "previous" or "initial").
TEMPORAL_METRICS: dict[str, tuple[TemporalMetric, str]] = {
    "relative_update": (relative_update, "previous"),
    "cosine_to_init": (cosine_to_init, "initial"),
}
