"""Statistics pooled over every selected weight (or bias) tensor, and the paper's 14 features.

The reference concatenates all tensors and calls ``torch.mean``, ``torch.var`` (unbiased) and
``torch.median`` (the lower median: the value of 0-based rank (n-1)//2). Concatenating a large
checkpoint would hold all of it in memory at once, so tensors are added one at a time, each read
once, in the precision it is stored in:

- 16-bit floats (float16, bfloat16: how large checkpoints are published) are *counted*: a tensor
  holds at most 65536 distinct bit patterns, so one ``bincount`` over its bits (about 1.3 ns a
  value, no float copy) records it exactly. Mean, variance and median are then functions of at
  most 65536 (value, count) pairs per dtype, in float64: the mean from an exactly rounded sum
  (``math.fsum`` of count * value products, each exact in float64 for counts below 2^42), the
  variance from float64 deviations (relative error about 1e-15), and the lower median, exact, from
  the cumulative counts. NaN and inf are counted in their own bit patterns. No second pass.
- Wider floats (float32, float64): mean and variance are merged exactly (Chan's pairwise update in
  float64) from float32 row sums added up in float64 (relative error below 1e-6, see
  ``_mean_and_m2``); the median is exact: sets below ``in_memory_bytes`` are kept and selected
  with numpy, larger ones get a second pass over the tensors that collects only the values inside
  a narrow bracket estimated from a random sample.
- A set holding both kinds gets the exact median of their union (``_union_kth``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
import torch

from dyntools.metrics.finite import all_finite, count_nonfinite
from dyntools.metrics.records import PooledStats, Reason, ReasonCode
from dyntools.metrics.temporal import TINY_MEAN_SQUARE

DEFAULT_IN_MEMORY_BYTES = 64 * 2**20
# One value in SAMPLE_EVERY is sampled to bracket the median of a large set.
SAMPLE_EVERY = 64
# Sets of at most this many values get exact float64 moments from a copy (2 MB as float64).
SMALL_EXACT = 1 << 18
# Float dtypes added as counts of their bit patterns (each holds 2^16 of them).
COUNTED_DTYPES = frozenset({torch.float16, torch.bfloat16})
_PATTERNS = 1 << 16
# Values per np.bincount call: numpy widens its input to int64, so blocks bound that copy (8 MB);
# block-sized temporaries also stay in cache (measured 2x faster than one call per tensor).
_COUNT_BLOCK = 1 << 20

Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]


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


@functools.cache
def _pattern_values(dtype: torch.dtype) -> Floats:
    """The float64 value of each 16-bit pattern of ``dtype``, indexed by the pattern read as an
    unsigned integer (NaN and inf patterns included)."""
    patterns = torch.from_numpy(np.arange(_PATTERNS, dtype=np.uint16).view(np.int16))
    values: Floats = patterns.view(dtype).double().numpy()
    values.flags.writeable = False
    return values


def count_patterns(tensor: torch.Tensor) -> Counts:
    """How often each bit pattern occurs in a 16-bit float tensor: int64 counts of shape (65536,),
    indexed as ``_pattern_values``."""
    flat = tensor.detach().reshape(-1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    bits = flat.view(torch.int16)
    if bits.device.type != "cpu":
        # On the device: only the 512 KB of counts cross over.
        unsigned = bits.to(torch.int32) & (_PATTERNS - 1)
        device_counts = torch.bincount(unsigned, minlength=_PATTERNS)
        found: Counts = device_counts.cpu().numpy().astype(np.int64)
        return found
    array = bits.numpy().view(np.uint16)
    if array.size <= _COUNT_BLOCK:
        small: Counts = np.bincount(array, minlength=_PATTERNS).astype(np.int64, copy=False)
        return small
    counts = np.zeros(_PATTERNS, dtype=np.int64)
    for start in range(0, array.size, _COUNT_BLOCK):
        counts += np.bincount(array[start : start + _COUNT_BLOCK], minlength=_PATTERNS)
    return counts


class _Counted:
    """The counted (16-bit) values of a set: sorted distinct finite values, their counts, and
    how many values are NaN/inf."""

    def __init__(self, counts: dict[torch.dtype, Counts]) -> None:
        values: list[Floats] = []
        found: list[Counts] = []
        self.nonfinite = 0
        for dtype, per_pattern in counts.items():
            table = _pattern_values(dtype)
            finite = np.isfinite(table)
            self.nonfinite += int(per_pattern[~finite].sum())
            used = finite & (per_pattern > 0)
            values.append(table[used])
            found.append(per_pattern[used])
        joined = np.concatenate(values) if values else np.zeros(0)
        # Equal values (0.0 and -0.0, one number in two dtypes) may stay apart: every use below
        # reads them as ties.
        order = np.argsort(joined, kind="stable")
        self.values: Floats = joined[order]
        self.counts: Counts = (np.concatenate(found) if found else np.zeros(0, np.int64))[order]
        self.n = int(self.counts.sum())

    def moments(self) -> tuple[float, float]:
        """(mean, sum of squared deviations) of the finite counted values, in float64."""
        # count * value is exact in float64 (an 11-bit significand times a count below 2^42),
        # and fsum rounds their sum once: the mean is the correctly rounded sum over n.
        mean = math.fsum((self.counts * self.values).tolist()) / self.n
        m2 = float((self.counts * np.square(self.values - mean)).sum())
        return mean, m2


def _combine(
    n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float
) -> tuple[int, float, float]:
    """Chan et al.'s pairwise update: exact merging of (count, mean, sum of squared deviations)."""
    total = n_a + n_b
    if total == 0:
        return 0, 0.0, 0.0
    delta = mean_b - mean_a
    # delta * (delta * weight), not delta * delta * weight: a first merge (weight 0) of a mean
    # near the top of the float64 range would otherwise give inf * 0 = NaN.
    m2 = m2_a + m2_b + delta * (delta * (n_a * n_b / total))
    return total, mean_a + delta * (n_b / total), m2


class PooledAccumulator:
    """Adds tensors one at a time; ``finish`` gives the pooled statistics.

    ``finish`` may call ``reread`` (an iterable factory yielding the same tensors again) when
    the float32/float64 part of the set was too large to keep in memory; counted (16-bit)
    tensors it yields are skipped, their counts are kept.
    """

    def __init__(self, *, in_memory_bytes: int = DEFAULT_IN_MEMORY_BYTES, seed: int = 0) -> None:
        self.count = 0
        self.nonfinite = 0  # NaN/inf among the float32/float64 values
        self._counts: dict[torch.dtype, Counts] = {}
        self._float_count = 0  # float32/float64 values added
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
        if tensor.dtype in COUNTED_DTYPES:
            n = tensor.numel()
            if n == 0:
                return
            self.count += n
            found = count_patterns(tensor)
            previous = self._counts.get(tensor.dtype)
            self._counts[tensor.dtype] = found if previous is None else previous + found
            return
        flat = as_float(tensor)
        n = flat.numel()
        if n == 0:
            return
        self.count += n
        self._float_count += n
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
        self._finite, self._mean, self._m2 = _combine(
            self._finite, self._mean, self._m2, n, mean, m2
        )

    def finish(self, reread: Callable[[], Iterable[torch.Tensor]] | None = None) -> PooledStats:
        if self.count == 0:
            return PooledStats(0, None, None, None, Reason(ReasonCode.EMPTY, "no tensors selected"))
        kept = None
        if self._kept is not None and self._kept:
            kept = _joined(self._kept)
            # Tensors kept since the last finish get their moments merged now, in one go.
            if self._merged < len(self._kept):
                self._moments(kept if self._merged == 0 else _joined(self._kept[self._merged :]))
                self._merged = len(self._kept)
        counted = _Counted(self._counts)
        nonfinite = self.nonfinite + counted.nonfinite
        if nonfinite:
            why = f"{nonfinite} of {self.count} values are NaN/inf"
            return PooledStats(self.count, None, None, None, Reason(ReasonCode.NONFINITE, why))
        n, mean, m2 = self._finite, self._mean, self._m2
        if counted.n:
            n, mean, m2 = _combine(n, mean, m2, counted.n, *counted.moments())
        var = m2 / (n - 1) if n > 1 else math.nan
        reason = (
            None
            if n > 1
            else Reason(ReasonCode.UNDEFINED, "one value: unbiased variance undefined (NaN)")
        )
        k = (n - 1) // 2
        if self._float_count == 0 or kept is not None:
            floats = kept.numpy() if kept is not None else np.zeros(0)
            median = _union_kth(floats, counted.values, counted.counts, k)
        elif reread is None:
            incomplete = Reason(ReasonCode.INCOMPLETE, "median needs a second pass: no reread")
            return PooledStats(n, mean, var, None, incomplete)
        else:
            sample = torch.cat(self._samples).sort().values.numpy()
            median = _bracket_median(n, sample, self._float_count, counted, reread)
        return PooledStats(n, mean, var, median, reason)


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _kth(values: npt.NDArray[np.floating], rank: int) -> float:
    """The value of 0-based ``rank`` in sorted order (torch.median's lower median for
    rank (n-1)//2). numpy's introselect is ten times faster than torch.median here."""
    return float(np.partition(values, rank)[rank])


def _union_kth(
    floats: npt.NDArray[np.floating], values: Floats, counts: Counts, rank: int
) -> float:
    """The value of 0-based ``rank`` among ``floats`` and the counted ``values`` (sorted
    ascending, each ``counts`` times), exactly."""
    if values.size == 0:
        return _kth(floats, rank)
    cumulative = np.cumsum(counts)
    if floats.size == 0:
        return float(values[np.searchsorted(cumulative, rank, side="right")])

    def at_most(j: int) -> int:
        """How many values of the union are <= values[j] (ties in later bins aside)."""
        return int(cumulative[j]) + int(np.count_nonzero(floats <= values[j]))

    # The first counted value whose running count passes ``rank``; values.size if none does.
    # Comparisons are exact: float32 values are compared with float64 ones by widening.
    low, high = 0, values.size
    while low < high:
        middle = (low + high) // 2
        if at_most(middle) > rank:
            high = middle
        else:
            low = middle + 1
    j = low
    below = values[j - 1] if j > 0 else -math.inf
    rank -= at_most(j - 1) if j > 0 else 0
    # The answer is a float strictly between the two counted values, or values[j] itself.
    between = floats > below
    if j < values.size:
        between &= floats < values[j]
    inside = floats[between]
    if rank < inside.size:
        return _kth(inside, rank)
    return float(values[j])


def _sums(flat: torch.Tensor) -> tuple[float, float]:
    """(sum, sum of squares): float32 reductions over rows of 256, added up in float64.
    (float32 vector_norm's sum of squares drifts low with the row's length: 9e-7 relative over
    rows of 4096 values, 1e-7 over rows of 256, measured.)"""
    width = 256
    rows = flat.numel() // width
    main = flat[: rows * width].view(rows, width)
    rest = flat[rows * width :].double()
    total = float(main.sum(dim=1).double().sum()) + float(rest.sum())
    squares = float((torch.linalg.vector_norm(main, dim=1).double() ** 2).sum())
    return total, squares + float((rest**2).sum())


def _mean_and_m2(flat: torch.Tensor) -> tuple[float, float]:
    """Mean and sum of squared deviations of finite values, without a float64 copy.

    torch.var_mean is exact but slow (0.26 s for 19 M values here); sums over rows are ten
    times faster. Each row of 256 is reduced in float32 (relative error about 1e-7, at worst
    256 * 2^-24 = 1.5e-5 of the row's sum of magnitudes) and rows add up in float64, so the
    mean and the sum of squares keep about 7 digits (tests/test_metrics_precision.py). When the
    mean dominates the spread, sum-of-squares loses digits, so the values are shifted by the
    mean and summed again. float32 squares that overflow (values beyond 1.8e19) or lose digits
    to underflow (values below about 1e-14) send the tensor to float64 blocks instead.
    """
    n = flat.numel()
    total, squares = _sums(flat)
    if flat.dtype != torch.float64 and not (n * TINY_MEAN_SQUARE <= squares < math.inf):
        # (All zeros land here too, at the cost of one float64 pass.)
        return _wide_mean_and_m2(flat)
    mean = total / n
    m2 = squares - n * mean * mean
    if m2 < 1e-3 * squares:
        shift = float(torch.tensor(mean, dtype=flat.dtype))
        total, squares = _sums(flat - shift)
        mean = shift + total / n
        m2 = squares - total * total / n
    return mean, max(m2, 0.0)


def _wide_mean_and_m2(flat: torch.Tensor) -> tuple[float, float]:
    """Mean and sum of squared deviations in float64, a block of values at a time."""
    n, mean, m2 = 0, 0.0, 0.0
    for start in range(0, flat.numel(), _COUNT_BLOCK):
        block = flat[start : start + _COUNT_BLOCK].double()
        block_mean = float(block.mean())
        block_m2 = float((block - block_mean).square().sum())
        n, mean, m2 = _combine(n, mean, m2, block.numel(), block_mean, block_m2)
    return mean, m2


def _compare_dtype(flat: torch.Tensor, *bounds: float) -> torch.Tensor:
    # Comparing a float32 tensor with a Python float rounds the float to float32; bounds taken
    # from a float64 tensor may not survive that, so compare in float64 then.
    for bound in bounds:
        if math.isfinite(bound) and float(torch.tensor(bound, dtype=flat.dtype)) != bound:
            return flat.double()
    return flat


def _bracket_median(
    n: int,
    sample: Floats,
    sampled: int,
    counted: _Counted,
    reread: Callable[[], Iterable[torch.Tensor]],
) -> float:
    """Exact lower median (0-based rank (n-1)//2) of n values: ``sampled`` float32/float64 values
    seen through a sorted random ``sample``, and the ``counted`` ones.

    A bracket [low, high] is chosen around the median's estimated place (each sampled value
    standing for sampled / len(sample) values, counted values counted exactly); one pass over
    the float tensors then counts the values below and at the bounds and keeps only those
    inside. A bracket that missed is widened (16 times, then to everything).
    """
    k = (n - 1) // 2
    weight = sampled / max(sample.size, 1)
    points = np.concatenate([sample, counted.values])
    order = np.argsort(points, kind="stable")
    points = points[order]
    weights = np.concatenate([np.full(sample.size, weight), counted.counts.astype(np.float64)])
    running = np.cumsum(weights[order])
    # The sample rank of the true median has standard deviation about sqrt(len(sample))/2.
    margin = weight * (4 * math.sqrt(sample.size) + 2)
    for widen in (1.0, 16.0, math.inf):
        at = int(np.searchsorted(running, k - margin * widen, side="right")) - 1
        low = float(points[at]) if at >= 0 else -math.inf
        at = int(np.searchsorted(running, k + margin * widen, side="left"))
        high = float(points[at]) if at < points.size else math.inf
        values, counts = counted.values, counted.counts
        below = int(counts[values < low].sum())
        at_low = int(counts[values == low].sum())
        at_high = int(counts[values == high].sum()) if high != low else 0
        held = (values > low) & (values < high)
        inside: list[torch.Tensor] = []
        for tensor in reread():
            if tensor.dtype in COUNTED_DTYPES:
                continue
            flat = _compare_dtype(as_float(tensor), low, high)
            below += int((flat < low).sum())
            at_low += int((flat == low).sum())
            if high != low:
                at_high += int((flat == high).sum())
            inside.append(flat[(flat > low) & (flat < high)].double())
        floats = torch.cat(inside).numpy() if inside else np.zeros(0)
        rank = k - below
        if rank < 0:
            continue
        if rank < at_low:
            return low
        rank -= at_low
        held_count = floats.size + int(counts[held].sum())
        if rank < held_count:
            return _union_kth(floats, values[held], counts[held], rank)
        rank -= held_count
        if rank < at_high:
            return high
    raise RuntimeError(f"pooled median not found among {n} values: the set changed between passes")
