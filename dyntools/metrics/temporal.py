"""A matrix against its version in another checkpoint: the numbers temporal metrics read.

``relative_update`` = ||W_t - W_prev||_F / ||W_prev||_F (the previous *saved* checkpoint, not
the previous optimizer step) and ``cosine_to_init`` = <W_t, W_0> / (||W_t||_F ||W_0||_F) (the
run's first saved checkpoint: the initialization only where the run saved step 0) are functions
of a ``Comparison`` (``builtin``); this module computes it (``kinds.compared_with`` says in words
what a checkpoint was compared with).

Precision: both versions are read in their stored dtype and converted block by block to float32
(float64 when either is float64); each row of ``_WIDTH`` values is reduced in float32 (as row dot
products: no float32 square root to round) and the rows add up in float64. The four sums then
carry a relative error of about 1e-8 (at worst ``_WIDTH / 8 * 2^-24`` = 2e-6 of a row's sum of
magnitudes) against float64 throughout (tests/test_metrics_precision.py holds 1e-6), far below the
resolution of any stored dtype that ``relative_update`` is compared with. Where float32 squares
would overflow (values beyond 1.8e19) or underflow (values below about 1e-14) the sums are taken
again in float64. Blocks of ``_BLOCK_ROWS`` rows keep the temporaries in cache, and a matrix
compared with its previous and its first version is widened once for both: on a 50304 x 512
float16 matrix one comparison took about 0.04 s, against 0.38 s with float64 copies (two
threads).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from dyntools.metrics.finite import all_finite
from dyntools.metrics.records import Comparison, Reason, ReasonCode

_NAN = float("nan")
_WIDTH = 256  # values per float32 row reduction
_BLOCK_ROWS = 1024  # rows per block: 1 MB of float32 per version
# Below this mean square per value, float32 squares lose digits (they reach float32's smallest
# normal number, 1.2e-38, for values of 1e-19): such sums are taken again in float64.
TINY_MEAN_SQUARE = 1e-28


def missing(problem: Reason) -> Comparison:
    """A comparison that could not be made, and why."""
    return Comparison(_NAN, _NAN, _NAN, _NAN, problem)


def compare(
    current: torch.Tensor, other: torch.Tensor, what: str, stored: Sequence[torch.dtype] = ()
) -> Comparison:
    """Norms, difference norm and dot product of ``current`` and ``other`` (the ``what``
    checkpoint's version), or why they cannot be compared; ``stored``: the dtypes the two
    versions were saved in (their resolution bounds what a difference can mean). Any float
    dtypes; half types are widened a block at a time."""
    return compare_all(current, [Other(other, what, stored)])[0]


class Other(NamedTuple):
    """Another checkpoint's version of a matrix: the tensor, what it is (``previous``,
    ``initial``) and the dtypes the two versions were stored in."""

    tensor: torch.Tensor
    what: str
    stored: Sequence[torch.dtype] = ()


def compare_all(current: torch.Tensor, others: Sequence[Other]) -> list[Comparison]:
    """``compare`` against several versions at once: ``current`` is widened and its norm taken
    once per block for all of them."""
    results: list[Comparison] = [_UNSET] * len(others)
    alike: list[int] = []
    for j, other in enumerate(others):
        if other.tensor.shape != current.shape:
            results[j] = missing(
                Reason(
                    ReasonCode.OTHER_VERSION,
                    f"shape changed from {list(other.tensor.shape)} ({other.what}) to "
                    f"{list(current.shape)}",
                )
            )
        else:
            alike.append(j)
    if not alike:
        return results
    tensors = [others[j].tensor for j in alike]
    wide = any(t.dtype == torch.float64 for t in (current, *tensors))
    norm2, sums = _sums(current, tensors, torch.float64 if wide else torch.float32)
    tiny = current.numel() * TINY_MEAN_SQUARE
    for j, found in zip(alike, sums, strict=True):
        other = others[j]
        mine = norm2
        if not all(math.isfinite(s) for s in (mine, *found)):
            # NaN/inf in an input, or float32 squares overflowing (values beyond 1.8e19).
            if not all_finite(other.tensor):
                why = f"the {other.what} version holds NaN/inf"
                results[j] = missing(Reason(ReasonCode.NONFINITE, why))
                continue
            if not all_finite(current):
                results[j] = missing(Reason(ReasonCode.NONFINITE, "this version holds NaN/inf"))
                continue
            if not wide:
                mine, (found,) = _sums(current, [other.tensor], torch.float64)
        elif not wide and not _exact_enough(current, other.tensor, tiny, mine, *found[:2]):
            mine, (found,) = _sums(current, [other.tensor], torch.float64)
        other2, difference2, dot = found
        results[j] = Comparison(
            norm=math.sqrt(mine),
            other_norm=math.sqrt(other2),
            difference_norm=math.sqrt(difference2),
            dot=dot,
            resolution=max((torch.finfo(dtype).eps for dtype in other.stored), default=0.0),
        )
    return results


_UNSET = Comparison(_NAN, _NAN, _NAN, _NAN)


def _exact_enough(
    a: torch.Tensor, b: torch.Tensor, tiny: float, a2: float, b2: float, d2: float
) -> bool:
    """Whether float32 sums of squares ``a2`` (of a), ``b2`` (of b) and ``d2`` (of a - b) kept
    their digits: a sum below ``tiny`` may hold squares that underflowed, even to 0, unless its
    values are zeros (a zero-initialized tensor, a frozen one: checked without widening)."""
    if a2 < tiny and (a2 > 0.0 or bool(a.any())):
        return False
    if b2 < tiny and (b2 > 0.0 or bool(b.any())):
        return False
    if d2 < tiny:
        same = torch.equal(a, b) if a.dtype == b.dtype else bool((a == b).all())
        return d2 == 0.0 and same
    return True


def _rows(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The values of ``tensor`` (row-major order, a view where possible) as (rows of ``_WIDTH``,
    the remainder as one short row): norms and dot products do not depend on the layout."""
    flat = tensor.detach().reshape(-1)
    whole = flat.numel() // _WIDTH * _WIDTH
    return flat[:whole].view(-1, _WIDTH), flat[whole:].view(1, -1)


def _sums(
    current: torch.Tensor, others: Sequence[torch.Tensor], dtype: torch.dtype
) -> tuple[float, list[tuple[float, float, float]]]:
    """||a||^2, and (||b||^2, ||a - b||^2, <a, b>) for each other version b: each row reduced in
    ``dtype``, rows added in float64."""
    mine = _rows(current)
    theirs = [_rows(other) for other in others]
    parts: list[torch.Tensor] = []
    for k, a_rows in enumerate(mine):
        for start in range(0, a_rows.shape[0], _BLOCK_ROWS):
            a = a_rows[start : start + _BLOCK_ROWS].to(dtype)
            if a.numel() == 0:
                continue
            # Sums of squares as row dot products, not squared norms: a norm's float32 square
            # root would add its rounding (2e-7 relative, measured), and einsum's bmm path
            # measured 6x slower on these blocks.
            columns = [torch.linalg.vecdot(a, a)]
            for other in theirs:
                b = other[k][start : start + _BLOCK_ROWS].to(dtype)
                difference = a - b
                columns += [
                    torch.linalg.vecdot(b, b),
                    torch.linalg.vecdot(difference, difference),
                    torch.linalg.vecdot(a, b),
                ]
            parts.append(torch.stack(columns))
    if not parts:
        return 0.0, [(0.0, 0.0, 0.0) for _ in others]
    sums: list[float] = torch.cat(parts, dim=1).double().sum(dim=1).tolist()
    return sums[0], [
        (sums[1 + 3 * j], sums[2 + 3 * j], sums[3 + 3 * j]) for j in range(len(others))
    ]
