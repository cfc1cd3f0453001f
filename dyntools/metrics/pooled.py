"""Statistics pooled over every selected weight (or bias) tensor, and the paper's 14 features.

The reference concatenates all tensors and calls ``torch.mean``, ``torch.var`` (unbiased) and
``torch.median`` (the lower median). Concatenating a large checkpoint would hold all of it in
memory at once, so tensors are added one at a time: mean and variance are merged exactly (Chan's
pairwise update in float64), and the median is found exactly in a second pass over the tensors
that collects only the values inside a narrow bracket estimated from a random sample. Small sets
(below ``in_memory_bytes``) are simply kept and concatenated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from dyntools.metrics.finite import all_finite, count_nonfinite
from dyntools.metrics.records import PooledStats, Reason, ReasonCode

DEFAULT_IN_MEMORY_BYTES = 64 * 2**20
# One value in SAMPLE_EVERY is sampled to bracket the median of a large set.
SAMPLE_EVERY = 64
# Sets of at most this many values get exact float64 moments from a copy (2 MB as float64).
SMALL_EXACT = 1 << 18


def as_float(tensor: torch.Tensor) -> torch.Tensor:
    """Flattened float32 (or float64) values on the CPU: half types are upcast, integers
    refused."""
    if not tensor.is_floating_point():
        raise TypeError(f"pooled statistics need floating-point tensors, got {tensor.dtype}")
    flat = tensor.detach().reshape(-1)
    if flat.device.type != "cpu":
        # The median is selected by numpy, on the host; GPU tensors are copied over once.
        flat = flat.cpu()
    return flat if flat.dtype in (torch.float32, torch.float64) else flat.float()


class PooledAccumulator:
    """Adds tensors one at a time; ``finish`` gives the pooled statistics.

    ``finish`` may call ``reread`` (an iterable factory yielding the same tensors again) when
    the set was too large to keep in memory.
    """

    def __init__(self, *, in_memory_bytes: int = DEFAULT_IN_MEMORY_BYTES, seed: int = 0) -> None:
        self.count = 0
        self.nonfinite = 0
        self._finite = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._kept: list[torch.Tensor] | None = []
        self._merged = 0  # leading kept tensors whose moments are merged already
        self._kept_bytes = 0
        self._in_memory_bytes = in_memory_bytes
        self._samples: list[torch.Tensor] = []
        self._generator = torch.Generator().manual_seed(seed)

    def add(self, tensor: torch.Tensor) -> None:
        flat = as_float(tensor)
        n = flat.numel()
        if n == 0:
            return
        self.count += n
        if self._kept is not None:
            self._kept_bytes += n * flat.element_size()
            if self._kept_bytes <= self._in_memory_bytes:
                # Kept tensors are checked and summed once, concatenated, in ``finish``: per
                # tensor, the fixed cost of those reductions dominated checkpoints of small
                # models.
                self._kept.append(flat)
                return
            # Too large to keep: from now on moments stream and a random sample brackets the
            # median.
            for i, kept in enumerate(self._kept):
                if i < self._merged:
                    self._sample(kept)
                else:
                    self._stream(kept)
            self._kept = None
        self._stream(flat)

    def _stream(self, flat: torch.Tensor) -> None:
        self._moments(flat)
        self._sample(flat)

    def _moments(self, flat: torch.Tensor) -> None:
        if flat.numel() <= SMALL_EXACT:
            self._small_moments(flat)
        elif all_finite(flat):
            self._merge(flat.numel(), *_mean_and_m2(flat))
        else:
            nan, inf = count_nonfinite(flat)
            self.nonfinite += nan + inf

    def _small_moments(self, flat: torch.Tensor) -> None:
        # Small sets: an exact float64 copy, in numpy, whose per-call cost is lower than torch's
        # on arrays this small. (No BLAS dot: OpenBLAS's own threads fight torch's; measured
        # 3x slower per checkpoint.)
        wide = flat.numpy().astype(np.float64)
        # NaN/inf values, or an overflowing sum, show as a non-finite mean: handled below.
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(wide.mean())
        if not math.isfinite(mean):
            nonfinite = int(wide.size - np.isfinite(wide).sum())
            if nonfinite:
                self.nonfinite += nonfinite
                return
            # Finite float64 values near the top of the range overflowed the sum: scale first.
            scale = float(np.abs(wide).max())
            wide = wide / scale
            mean = float(wide.mean())
            centred = wide - mean
            self._merge(wide.size, mean * scale, float(np.square(centred).sum()) * scale * scale)
            return
        centred = wide - mean
        self._merge(wide.size, mean, float(np.square(centred).sum()))

    def _sample(self, flat: torch.Tensor) -> None:
        n = flat.numel()
        index = torch.randint(n, (math.ceil(n / SAMPLE_EVERY),), generator=self._generator)
        self._samples.append(flat[index].double())

    def _merge(self, n: int, mean: float, m2: float) -> None:
        # Chan et al.'s pairwise update: exact merging of (count, mean, sum of squared deviations).
        total = self._finite + n
        delta = mean - self._mean
        # delta * (delta * weight), not delta * delta * weight: a first merge (weight 0) of a
        # mean near the top of the float64 range would otherwise give inf * 0 = NaN.
        self._m2 += m2 + delta * (delta * (self._finite * n / total))
        self._mean += delta * (n / total)
        self._finite = total

    def finish(self, reread: Callable[[], Iterable[torch.Tensor]] | None = None) -> PooledStats:
        if self.count == 0:
            return PooledStats(0, None, None, None, Reason(ReasonCode.EMPTY, "no tensors selected"))
        kept = None
        if self._kept is not None:
            kept = _joined(self._kept)
            # Tensors kept since the last finish get their moments merged now, in one go.
            if self._merged < len(self._kept):
                self._moments(kept if self._merged == 0 else _joined(self._kept[self._merged :]))
                self._merged = len(self._kept)
        if self.nonfinite:
            why = f"{self.nonfinite} of {self.count} values are NaN/inf"
            return PooledStats(self.count, None, None, None, Reason(ReasonCode.NONFINITE, why))
        n = self.count
        var = self._m2 / (n - 1) if n > 1 else math.nan
        reason = (
            None
            if n > 1
            else Reason(ReasonCode.UNDEFINED, "one value: unbiased variance undefined (NaN)")
        )
        if kept is not None:
            median = _kth(kept, (n - 1) // 2)
        elif reread is None:
            incomplete = Reason(ReasonCode.INCOMPLETE, "median needs a second pass: no reread")
            return PooledStats(n, self._mean, var, None, incomplete)
        else:
            median = _bracket_median(n, torch.cat(self._samples).sort().values, reread)
        return PooledStats(n, self._mean, var, median, reason)


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _kth(values: torch.Tensor, rank: int) -> float:
    """The value of 0-based ``rank`` in sorted order (torch.median's lower median for
    rank (n-1)//2). numpy's introselect is ten times faster than torch.median here."""
    return float(np.partition(values.numpy(), rank)[rank])


def _sums(flat: torch.Tensor) -> tuple[float, float]:
    """(sum, sum of squares): float32 reductions over rows of 4096, added up in float64."""
    width = 4096
    rows = flat.numel() // width
    main = flat[: rows * width].view(rows, width)
    rest = flat[rows * width :].double()
    total = float(main.sum(dim=1).double().sum()) + float(rest.sum())
    squares = float((torch.linalg.vector_norm(main, dim=1).double() ** 2).sum())
    return total, squares + float((rest**2).sum())


def _mean_and_m2(flat: torch.Tensor) -> tuple[float, float]:
    """Mean and sum of squared deviations of finite values, without a float64 copy.

    torch.var_mean is exact but slow (0.26 s for 19 M values here); sums over rows are ten
    times faster. When the mean dominates the spread, sum-of-squares loses digits, so the values
    are shifted by the mean and summed again.
    """
    n = flat.numel()
    total, squares = _sums(flat)
    mean = total / n
    m2 = squares - n * mean * mean
    if m2 < 1e-3 * squares:
        shift = float(torch.tensor(mean, dtype=flat.dtype))
        total, squares = _sums(flat - shift)
        mean = shift + total / n
        m2 = squares - total * total / n
    return mean, max(m2, 0.0)


def _compare_dtype(flat: torch.Tensor, *bounds: float) -> torch.Tensor:
    # Comparing a float32 tensor with a Python float rounds the float to float32; bounds taken
    # from a float64 tensor may not survive that, so compare in float64 then.
    for bound in bounds:
        if math.isfinite(bound) and float(torch.tensor(bound, dtype=flat.dtype)) != bound:
            return flat.double()
    return flat


def _bracket_median(
    n: int, sample: torch.Tensor, reread: Callable[[], Iterable[torch.Tensor]]
) -> float:
    """Exact lower median (0-based rank (n-1)//2) of n values, from a sorted random sample."""
    k = (n - 1) // 2
    ns = sample.numel()
    centre = k / max(n - 1, 1) * (ns - 1)
    # The sample rank of the true median has standard deviation about sqrt(ns)/2.
    margin = 4 * math.sqrt(ns) + 2
    for widen in (1.0, 16.0, math.inf):
        low_at = max(centre - margin * widen, 0)
        high_at = min(centre + margin * widen, ns - 1)
        low = float(sample[math.floor(low_at)]) if low_at > 0 else -math.inf
        high = float(sample[math.ceil(high_at)]) if high_at < ns - 1 else math.inf
        below = at_low = at_high = 0
        inside: list[torch.Tensor] = []
        for tensor in reread():
            flat = _compare_dtype(as_float(tensor), low, high)
            below += int((flat < low).sum())
            at_low += int((flat == low).sum())
            if high != low:
                at_high += int((flat == high).sum())
            inside.append(flat[(flat > low) & (flat < high)].double())
        values = torch.cat(inside)
        rank = k - below
        if rank < 0:
            continue
        if rank < at_low:
            return low
        rank -= at_low
        if rank < values.numel():
            return _kth(values, rank)
        rank -= values.numel()
        if rank < at_high:
            return high
    raise RuntimeError(f"pooled median not found among {n} values: the set changed between passes")
