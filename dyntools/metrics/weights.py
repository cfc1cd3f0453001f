"""Weight metrics of one checkpoint, streamed tensor by tensor from a ``TensorSource``.

Tensors are grouped by matrix shape; each group is read in chunks of at most ``max_batch_bytes``,
stacked, and given one batched SVD (``torch.linalg.svdvals``), so memory stays bounded by the
chunk size however large the checkpoint is, and small per-head matrices share one LAPACK call.
Which metrics, and how each is computed from the batch, comes from the registry.

Each tensor is read once, in its stored dtype, and used in it where that is exact enough: the
pooled statistics count 16-bit floats exactly (``pooled``), the temporal metrics widen both
versions a block at a time (``temporal``), and only the stack the SVD needs is a float32 copy,
made in one pass (``_stack``). A ``SpectrumCache`` shared by several calls over one checkpoint
takes each matrix's SVD once, however many selections read it.

This function changes nothing in the calling process (thread counts, allocator settings): the
pipeline's worker set-up decides those (``dyntools.pipeline.workers``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from dyntools.metrics.batch import Column, Floats, MatrixBatch
from dyntools.metrics.finite import all_finite, count_nonfinite
from dyntools.metrics.kinds import (
    Against,
    MatrixMetric,
    Pool,
    PooledMetric,
    ReshapedConvMetric,
    TemporalMetric,
)
from dyntools.metrics.matrices import (
    Cut,
    Matrix,
    default_hook_point,
    default_pool,
    matrix_views,
    plan_matrices,
)
from dyntools.metrics.pooled import COUNTED_DTYPES, DEFAULT_IN_MEMORY_BYTES, PooledAccumulator
from dyntools.metrics.records import (
    MetricValue,
    PooledStats,
    Reason,
    ReasonCode,
    Scope,
    SkippedTensor,
    TensorSource,
)
from dyntools.metrics.registry import WEIGHT_KINDS, of_type, select_metrics
from dyntools.metrics.spectrum import kernel_batch, matrix_batch, matrix_l1
from dyntools.metrics.temporal import Other, compare_all, missing

DEFAULT_MAX_BATCH_BYTES = 32 * 2**20
# torch.linalg.LinAlgError, which torch's stubs do not export.
_LINALG_ERROR: type[Exception] = torch.linalg.LinAlgError  # type: ignore[attr-defined]
_WHOLE = Cut()


class _Known(NamedTuple):
    """One matrix's row of a ``MatrixBatch``."""

    l1: float
    l2: float
    trace: float
    spectral: float | None
    singular_values: Floats | None


class SpectrumCache:
    """What the matrix metrics read of each matrix of one checkpoint (norms, trace, singular
    values), kept across ``compute_weight_metrics`` calls over that checkpoint.

    The pipeline computes the hook points' values and, when the network selection cuts tensors
    its own way (the polypythias preset: every weight as one (rows, -1) matrix), the network
    values in a second call; a matrix that both calls cut alike then gets one SVD, not two.
    Keys are tensor names: use one cache per checkpoint, never across checkpoints.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[object, ...], _Known] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, matrix: Matrix, cut: Cut, *, with_svd: bool) -> _Known | None:
        known = self._rows.get(_cache_key(matrix, cut))
        if known is None or (with_svd and known.singular_values is None):
            return None
        return known

    def put(self, matrices: Sequence[Matrix], cuts: Sequence[Cut], batch: MatrixBatch) -> None:
        for i, (matrix, cut) in enumerate(zip(matrices, cuts, strict=True)):
            self._rows[_cache_key(matrix, cut)] = _Known(
                float(batch.l1[i]),
                float(batch.l2[i]),
                float(batch.trace[i]),
                None if batch.spectral is None else float(batch.spectral[i]),
                None if batch.singular_values is None else batch.singular_values[i],
            )


def _cache_key(matrix: Matrix, cut: Cut) -> tuple[object, ...]:
    if matrix.head is None and not matrix.component:
        # A whole tensor reshaped row-major to (m, n) is one matrix whatever cut asked for it
        # (a 2-D weight under Cut() and under Cut(rows=True)).
        return (matrix.tensor, matrix.kind, matrix.shape)
    return (matrix.tensor, matrix.kind, matrix.shape, cut, matrix.head, matrix.component)


def _batch_of(known: Sequence[_Known]) -> MatrixBatch:
    """The ``MatrixBatch`` of same-shape matrices found in a cache."""
    with_svd = all(k.singular_values is not None for k in known)
    return MatrixBatch(
        l1=np.array([k.l1 for k in known]),
        l2=np.array([k.l2 for k in known]),
        trace=np.array([k.trace for k in known]),
        spectral=np.array([k.spectral for k in known]) if with_svd else None,
        singular_values=(
            np.stack([k.singular_values for k in known if k.singular_values is not None])
            if with_svd
            else None
        ),
    )


@dataclass(frozen=True)
class WeightMetrics:
    """Everything computed for one checkpoint.

    ``values``: per-matrix (per head when split) and temporal rows, in selection order;
    ``pooled``: the network-scope rows of the pooled statistics of all weights and biases;
    ``skipped``: selected tensors that got no per-matrix metrics, and why.
    """

    values: tuple[MetricValue, ...]
    pooled: tuple[MetricValue, ...]
    skipped: tuple[SkippedTensor, ...]

    def network_means(
        self, metrics: Iterable[str], tensors: Collection[str] | None = None
    ) -> tuple[MetricValue, ...]:
        """Network-scope rows of ``metrics``: the unweighted mean over every matrix (of
        ``tensors``, default all), as the reference averages its per-matrix metrics into the
        paper's features. A NaN the reference also gives (``var_singular_value`` of a one-row
        matrix) is left out of the mean, as its nan-mean does; a matrix with no value (NaN/inf
        weights, a failed SVD), or a selected tensor that yields no matrix at all (it cannot be
        split per head, an unsupported shape), makes the network value missing, since a mean
        over the other matrices would silently describe another network."""
        unmeasured = [
            s
            for s in self.skipped
            if not s.reason.expected and (tensors is None or s.tensor in tensors)
        ]
        if unmeasured:
            skipped = unmeasured[0]
            why = Reason(
                skipped.reason.code,
                f"{len(unmeasured)} selected tensor(s) yield no matrix (e.g. {skipped.tensor}: "
                f"{skipped.reason.message})",
            )
            return tuple(
                MetricValue(Scope.NETWORK, "", "", None, name, None, why) for name in metrics
            )
        found: dict[str, list[float]] = {}
        gaps: dict[str, list[MetricValue]] = {}
        for row in self.values:
            if tensors is not None and row.tensor not in tensors:
                continue
            if row.value is None:
                gaps.setdefault(row.metric, []).append(row)
            elif not math.isnan(row.value):
                found.setdefault(row.metric, []).append(row.value)
        rows = []
        for name in metrics:
            numbers, missing = found.get(name, []), gaps.get(name, [])
            if missing:
                first = missing[0].reason
                partial = Reason(
                    first.code if first else ReasonCode.EMPTY,
                    f"{len(missing)} of {len(missing) + len(numbers)} matrices have no {name} "
                    f"(e.g. {missing[0].tensor}: {first.message if first else 'missing'})",
                )
                rows.append(MetricValue(Scope.NETWORK, "", "", None, name, None, partial))
                continue
            mean = math.fsum(numbers) / len(numbers) if numbers else None
            empty = (
                None
                if numbers
                else Reason(ReasonCode.EMPTY, f"no selected matrix has a value for {name}")
            )
            rows.append(MetricValue(Scope.NETWORK, "", "", None, name, mean, empty))
        return tuple(rows)


@dataclass
class _Selection:
    """The chosen metrics by kind (registry entries)."""

    matrix: list[MatrixMetric]
    conv: list[ReshapedConvMetric]
    temporal: list[TemporalMetric]
    pooled: list[PooledMetric]
    matrix_svd: bool = field(init=False)
    conv_svd: bool = field(init=False)
    kernel: list[MatrixMetric] = field(init=False)

    def __post_init__(self) -> None:
        self.matrix_svd = any(m.needs_svd for m in self.matrix)
        self.conv_svd = any(m.needs_svd for m in self.conv)
        self.kernel = [m for m in self.matrix if m.per_kernel is not None]


def compute_weight_metrics(
    source: TensorSource,
    names: Sequence[str],
    *,
    metrics: Iterable[str] | None = None,
    hook_points: Mapping[str, str] | None = None,
    cuts: Mapping[str, Cut] | None = None,
    pools: Mapping[str, Pool | None] | None = None,
    previous: TensorSource | None = None,
    initial: TensorSource | None = None,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    pooled_in_memory_bytes: int = DEFAULT_IN_MEMORY_BYTES,
    spectra: SpectrumCache | None = None,
) -> WeightMetrics:
    """Weight metrics of the tensors ``names`` of one checkpoint.

    ``metrics``: names of matrix, conv, pooled and temporal metrics (default: all, the
    temporal ones only when ``previous``/``initial`` is given).
    ``hook_points``: tensor -> hook point (default: the name minus its last component).
    ``cuts``: tensor -> how it is cut into matrices (per head, fused Q/K/V, convolution, rows;
    default: by its rank, ``matrices.Cut``). ``pools``: tensor -> the pooled set it joins, or
    None (default: ``matrices.default_pool``). ``previous``/``initial``: the previous and the
    first checkpoint,
    for ``relative_update`` and ``cosine_to_init``. ``spectra``: per-matrix results shared with
    other calls over the same checkpoint (``SpectrumCache``).
    """
    chosen = select_metrics(metrics, *WEIGHT_KINDS)
    if metrics is None:
        # By default a temporal metric is computed only when its other checkpoint is given.
        given = {Against.PREVIOUS: previous is not None, Against.INITIAL: initial is not None}
        absent = {m.name for m in of_type(TemporalMetric, chosen) if not given[m.against]}
        chosen = tuple(name for name in chosen if name not in absent)
    selection = _Selection(
        matrix=of_type(MatrixMetric, chosen),
        conv=of_type(ReshapedConvMetric, chosen),
        temporal=of_type(TemporalMetric, chosen),
        pooled=of_type(PooledMetric, chosen),
    )
    names = list(dict.fromkeys(names))
    cuts = dict(cuts or {})
    for option, mapping in (("cuts", cuts), ("pools", pools or {})):
        stray = sorted(set(mapping) - set(names))
        if stray:
            raise ValueError(f"{option} names tensors that are not selected: {stray}")

    shapes = {name: tuple(source.shape(name)) for name in names}
    pool_of = {
        name: pools[name]
        if pools is not None and name in pools
        else default_pool(name, shapes[name])
        for name in names
    }
    need_matrices = bool(selection.matrix or selection.conv or selection.temporal)
    matrices: dict[str, list[Matrix]] = {}
    skipped: list[SkippedTensor] = []
    order = 0
    for name in names:
        hook = (hook_points or {}).get(name) or default_hook_point(name)
        planned, why = plan_matrices(name, shapes[name], hook, cuts.get(name, _WHOLE), order)
        order += max(len(planned), 1)
        if not need_matrices:
            continue
        if planned:
            matrices[name] = planned
        elif why is not None:
            skipped.append(SkippedTensor(name, why))

    run = _Run(source, selection, matrices, cuts, shapes, previous, initial, spectra)
    stats = _read_and_compute(run, names, pool_of, skipped, max_batch_bytes, pooled_in_memory_bytes)
    pooled = []
    for entry in selection.pooled:
        value, reason = entry.compute(stats[entry.pool])
        pooled.append(MetricValue(Scope.NETWORK, "", "", None, entry.name, value, reason))
    return WeightMetrics(
        values=run.ordered_rows(chosen), pooled=tuple(pooled), skipped=tuple(skipped)
    )


def _read_and_compute(
    run: _Run,
    names: list[str],
    pool_of: Mapping[str, Pool | None],
    skipped: list[SkippedTensor],
    max_batch_bytes: int,
    pooled_in_memory_bytes: int,
) -> dict[Pool, PooledStats]:
    """Reads every selected tensor once, computing the per-matrix rows into ``run`` on the way;
    returns the pooled statistics of the pools the chosen metrics need."""
    selection = run.selection
    pooled_of = {
        pool: PooledAccumulator(in_memory_bytes=pooled_in_memory_bytes)
        for pool in {m.pool for m in selection.pooled}
    }
    chunks = _chunks(
        run.matrices, run.shapes, max_batch_bytes, with_temporal=bool(selection.temporal)
    )
    for chunk in chunks:
        run.process(chunk, pool_of, pooled_of, skipped)
    # Tensors that are pooled but have no matrices (biases, or every tensor when no per-matrix
    # metric is selected) are read here, one at a time.
    for name in names:
        pool = pool_of[name]
        accumulator = pooled_of.get(pool) if pool is not None else None
        if accumulator is not None and name not in run.read_names:
            tensor = run.read(name, run.shapes[name], skipped)
            if tensor is not None:
                accumulator.add(tensor)
    return {
        pool: accumulator.finish(run.rereader([n for n in names if pool_of[n] is pool]))
        for pool, accumulator in pooled_of.items()
    }


def _chunks(
    matrices: Mapping[str, list[Matrix]],
    shapes: Mapping[str, tuple[int, ...]],
    max_bytes: int,
    *,
    with_temporal: bool,
) -> Iterator[list[str]]:
    """Tensor names grouped by matrix kind and (oriented) shape, cut into chunks of at most
    ``max_bytes``."""
    groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name, planned in matrices.items():
        groups.setdefault((planned[0].kind, _oriented(planned[0])), []).append(name)
    # A chunk holds the tensors, their stack and LAPACK's copy; temporal metrics add two more
    # versions of each tensor.
    copies = 3 if with_temporal else 1
    for names in groups.values():
        chunk: list[str] = []
        size = 0
        for name in names:
            nbytes = 4 * copies * _numel(shapes[name])
            if chunk and size + nbytes > max_bytes:
                yield chunk
                chunk, size = [], 0
            chunk.append(name)
            size += nbytes
        if chunk:
            yield chunk


def _oriented(matrix: Matrix) -> tuple[int, ...]:
    """A matrix matrix's shape as it is stacked: tall. Every metric here is the same for a matrix
    and its transpose, so a 768 x 3072 and a 3072 x 768 matrix share one batched SVD."""
    if matrix.kind == "matrix" and matrix.shape[0] < matrix.shape[1]:
        return (matrix.shape[1], matrix.shape[0])
    return matrix.shape


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


class _Run:
    """State of one ``compute_weight_metrics`` call: the sources, rows so far, tensors read."""

    def __init__(
        self,
        source: TensorSource,
        selection: _Selection,
        matrices: Mapping[str, list[Matrix]],
        cuts: Mapping[str, Cut],
        shapes: Mapping[str, tuple[int, ...]],
        previous: TensorSource | None,
        initial: TensorSource | None,
        spectra: SpectrumCache | None = None,
    ) -> None:
        self.source = source
        self.spectra = spectra
        self.selection = selection
        self.matrices = matrices
        self.cuts = cuts
        self.shapes = shapes
        self.others = {Against.PREVIOUS: previous, Against.INITIAL: initial}
        # matrix order -> metric -> row; ordered by the selection at the end.
        self.rows: dict[int, dict[str, MetricValue]] = {}
        self.read_names: set[str] = set()
        self.stored_dtypes: dict[str, torch.dtype] = {}  # the dtype each tensor was saved in
        # The memory the chunks are stacked into, reused from chunk to chunk (``_stack``).
        self.buffer: torch.Tensor | None = None

    def ordered_rows(self, chosen: Sequence[str]) -> tuple[MetricValue, ...]:
        return tuple(
            found[metric]
            for _, found in sorted(self.rows.items())
            for metric in chosen
            if metric in found
        )

    def read(
        self, name: str, shape: tuple[int, ...], skipped: list[SkippedTensor] | None
    ) -> torch.Tensor | None:
        """The tensor in its stored dtype, or None when it is not a float tensor (recorded in
        ``skipped``)."""
        self.read_names.add(name)
        tensor = self.source.read(name)
        self.stored_dtypes[name] = tensor.dtype
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"tensor {name!r} was announced with shape {list(shape)} but read as "
                f"{list(tensor.shape)}: the checkpoint changed while it was read; run again"
            )
        return _floating(name, tensor, skipped)

    def rereader(self, names: list[str]) -> Callable[[], Iterator[torch.Tensor]]:
        """Reads ``names`` again, one at a time (the pooled median's second pass), except the
        16-bit ones: the accumulator counted those exactly the first time."""

        def again() -> Iterator[torch.Tensor]:
            for name in names:
                if self.stored_dtypes.get(name) in COUNTED_DTYPES:
                    continue
                tensor = _floating(name, self.source.read(name), None)
                if tensor is not None:
                    yield tensor

        return again

    def process(
        self,
        chunk: list[str],
        pool_of: Mapping[str, Pool | None],
        pooled_of: Mapping[Pool, PooledAccumulator],
        skipped: list[SkippedTensor],
    ) -> None:
        """Reads one chunk of same-shape tensors and computes every matrix's metrics."""
        collected: list[tuple[Matrix, torch.Tensor]] = []
        for name in chunk:
            tensor = self.read(name, self.shapes[name], skipped)
            if tensor is None:
                continue
            pool = pool_of[name]
            accumulator = pooled_of.get(pool) if pool is not None else None
            if accumulator is not None:
                accumulator.add(tensor)
            planned = self.matrices[name]
            views = matrix_views(tensor, planned, self.cuts.get(name, _WHOLE))
            versions = {
                against: self._other_version(against, name, planned)
                for against in {m.against for m in self.selection.temporal}
            }
            for i, (matrix, view) in enumerate(zip(planned, views, strict=True)):
                collected.append((matrix, view))
                if self.selection.temporal:
                    self._temporal(matrix, view, i, versions)
        if self.spectra is not None and collected:
            collected = self._from_cache(self.spectra, collected)
        if not collected:
            return
        matrices = [m for m, _ in collected]
        stack, self.buffer = _stack([view for _, view in collected], self.buffer)
        # The l1 norms double as the finiteness check (NaN/inf make them NaN/inf): no pass of
        # its own; only a matrix whose l1 is not finite is checked value by value.
        l1 = matrix_l1(stack)
        if not np.isfinite(l1).all():
            keep = []
            for i, matrix in enumerate(matrices):
                problem = None if math.isfinite(l1[i]) else _nonfinite(stack[i])
                if problem is None:
                    keep.append(i)
                    continue
                why = Reason(ReasonCode.NONFINITE, f"{matrix.kind} {problem}")
                for name in self._metrics_of(matrix):
                    self._put(matrix, name, None, why)
            if not keep:
                return
            matrices = [matrices[i] for i in keep]
            stack = stack[keep]
            l1 = l1[keep]
        self._compute(matrices, stack, l1)

    def _temporal(
        self,
        matrix: Matrix,
        view: torch.Tensor,
        i: int,
        versions: Mapping[Against, _OtherVersion | Reason],
    ) -> None:
        """The temporal metrics of one matrix: one pass over it for every version compared."""
        mine = self.stored_dtypes[matrix.tensor]
        present = {
            against: Other(other.views[i], against.value, (mine, other.dtype))
            for against, other in versions.items()
            if not isinstance(other, Reason)
        }
        pairs = dict(zip(present, compare_all(view, list(present.values())), strict=True))
        for metric in self.selection.temporal:
            other = versions[metric.against]
            pair = missing(other) if isinstance(other, Reason) else pairs[metric.against]
            self._put(matrix, metric.name, *metric.compute(pair))

    def _from_cache(
        self, spectra: SpectrumCache, collected: list[tuple[Matrix, torch.Tensor]]
    ) -> list[tuple[Matrix, torch.Tensor]]:
        """Emits the rows of the matrices ``spectra`` knows; returns the others."""
        if collected[0][0].kind != "matrix":
            return collected
        svd = self.selection.matrix_svd
        found: list[Matrix] = []
        known: list[_Known] = []
        rest = []
        for matrix, view in collected:
            row = spectra.get(matrix, self.cuts.get(matrix.tensor, _WHOLE), with_svd=svd)
            if row is None:
                rest.append((matrix, view))
            else:
                found.append(matrix)
                known.append(row)
        if found:
            batch = _batch_of(known)
            for entry in self.selection.matrix:
                self._emit(found, entry.name, entry.compute(batch))
        return rest

    def _other_version(
        self, against: Against, name: str, planned: list[Matrix]
    ) -> _OtherVersion | Reason:
        """This tensor's matrices in the previous/initial checkpoint, or why there are none."""
        source = self.others[against]
        if source is None:
            code = (
                ReasonCode.NO_PREVIOUS if against is Against.PREVIOUS else ReasonCode.OTHER_VERSION
            )
            return Reason(code, f"no {against.value} checkpoint given")
        try:
            shape = tuple(source.shape(name))
        except KeyError:
            return Reason(
                ReasonCode.OTHER_VERSION, f"{name!r} is not in the {against.value} checkpoint"
            )
        if shape != self.shapes[name]:
            why = f"shape changed from {list(shape)} ({against.value}) to {list(self.shapes[name])}"
            return Reason(ReasonCode.OTHER_VERSION, why)
        # Kept in its stored dtype: ``compare`` widens it a block at a time.
        tensor = _floating(name, source.read(name), None)
        if tensor is None:
            why = f"{against.value} version of {name!r} is not a float tensor"
            return Reason(ReasonCode.NOT_FLOAT, why)
        return _OtherVersion(
            matrix_views(tensor, planned, self.cuts.get(name, _WHOLE)), tensor.dtype
        )

    def _metrics_of(self, matrix: Matrix) -> list[str]:
        if matrix.kind == "matrix":
            return [m.name for m in self.selection.matrix]
        return [m.name for m in (*self.selection.kernel, *self.selection.conv)]

    def _put(self, matrix: Matrix, metric: str, value: float | None, reason: Reason | None) -> None:
        row = MetricValue(
            Scope.TENSOR,
            matrix.hook_point,
            matrix.tensor,
            matrix.head,
            metric,
            value,
            reason,
            matrix.component,
        )
        self.rows.setdefault(matrix.order, {})[metric] = row

    def _compute(self, matrices: list[Matrix], stack: torch.Tensor, l1: Floats) -> None:
        selection = self.selection
        if matrices[0].kind == "matrix":
            self._matrix_columns(matrices, stack, l1, selection.matrix, selection.matrix_svd)
            return
        if selection.kernel:
            kernels = kernel_batch(stack)
            for entry in selection.kernel:
                if entry.per_kernel is not None:
                    self._emit(matrices, entry.name, entry.per_kernel(kernels))
        if selection.conv:
            reshaped = stack.reshape(stack.shape[0], stack.shape[1], -1)
            self._matrix_columns(matrices, reshaped, l1, selection.conv, selection.conv_svd)

    def _matrix_columns(
        self,
        matrices: list[Matrix],
        stack: torch.Tensor,
        l1: Floats,
        entries: Sequence[MatrixMetric | ReshapedConvMetric],
        svd: bool,
    ) -> None:
        try:
            batch = matrix_batch(stack, with_svd=svd, l1=l1)
        except _LINALG_ERROR as error:
            if len(matrices) == 1:
                why = Reason(ReasonCode.SVD_FAILED, f"SVD did not converge: {error}")
                for entry in entries:
                    self._put(matrices[0], entry.name, None, why)
                return
            # Retry one matrix at a time so that one bad matrix does not sink the batch.
            for i, matrix in enumerate(matrices):
                self._matrix_columns([matrix], stack[i : i + 1], l1[i : i + 1], entries, svd)
            return
        if self.spectra is not None and matrices[0].kind == "matrix":
            cuts = [self.cuts.get(m.tensor, _WHOLE) for m in matrices]
            self.spectra.put(matrices, cuts, batch)
        for entry in entries:
            self._emit(matrices, entry.name, entry.compute(batch))

    def _emit(self, matrices: list[Matrix], metric: str, column: Column) -> None:
        # Rows are made here rather than through _put: on small models they are a measurable
        # share of the time per checkpoint.
        values = column.values.tolist()  # Python floats
        flags = column.undefined.tolist() if column.undefined is not None else None
        missing_value = float("nan") if column.keep_nan else None
        rows = self.rows
        tensor_scope = Scope.TENSOR
        for i, matrix in enumerate(matrices):
            undefined = flags is not None and flags[i]
            row = MetricValue(
                tensor_scope,
                matrix.hook_point,
                matrix.tensor,
                matrix.head,
                metric,
                missing_value if undefined else values[i],
                column.reason if undefined else None,
                matrix.component,
            )
            slot = rows.get(matrix.order)
            if slot is None:
                slot = rows[matrix.order] = {}
            slot[metric] = row


def _stack(
    matrices: list[torch.Tensor], buffer: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One (B, ...) stack of same-shape matrices (wide ones transposed, see ``_oriented``), in
    float32, or float64 if any of them is: the SVD's precision (half types are widened); and
    the buffer it lives in, for the next chunk.

    Matrices are stacked column-major, the layout LAPACK reads, so the SVD does not copy them
    into it once more (``spectrum.singular_values``); they are widened straight into the stack,
    one pass, no float32 copy of each tensor first. Convolution weights stack row-major. The
    stack is carved from ``buffer`` when it is large enough: fresh memory for every chunk cost
    a page fault per 4 KB (a third of the time of this copy on a Pythia-70m checkpoint). Every
    result is copied to the host before the next chunk overwrites it.
    """
    dtype = torch.float64 if any(m.dtype == torch.float64 for m in matrices) else torch.float32
    oriented = [(m.mT if m.dim() == 2 and m.shape[0] < m.shape[1] else m) for m in matrices]
    first = oriented[0]
    count = len(oriented) * first.numel()
    if (
        buffer is None
        or buffer.numel() < count
        or buffer.dtype != dtype
        or buffer.device != first.device
    ):
        buffer = torch.empty(count, dtype=dtype, device=first.device)
    memory = buffer[:count]
    if first.dim() != 2:
        stack = memory.view(len(oriented), *first.shape)
        for slot, matrix in zip(stack, oriented, strict=True):
            slot.copy_(matrix)
        return stack, buffer
    rows, columns = first.shape
    stack = memory.view(len(oriented), columns, rows).mT
    for slot, matrix in zip(stack, oriented, strict=True):
        _copy_into(slot, matrix)
    return stack, buffer


# Values per block of a transposing copy: blocks stay in cache.
_COPY_BLOCK = 1 << 17


def _copy_into(slot: torch.Tensor, matrix: torch.Tensor) -> None:
    """``slot[:] = matrix``, widening it. A row-major matrix goes into a column-major slot a block
    of rows at a time: one copy_ transposes a 50304 x 512 float16 matrix in 0.16 s, blocks of
    256 rows in 0.03 s (one thread); matrices laid out like the slot are copied in one go."""
    if slot.stride() == matrix.stride() or matrix.device.type != "cpu":
        slot.copy_(matrix)
        return
    step = max(1, _COPY_BLOCK // max(matrix.shape[1], 1))
    for start in range(0, matrix.shape[0], step):
        slot[start : start + step].copy_(matrix[start : start + step])


class _OtherVersion(NamedTuple):
    """A tensor's matrices in another checkpoint, and the dtype it was stored in."""

    views: list[torch.Tensor]
    dtype: torch.dtype


def _floating(
    name: str, tensor: torch.Tensor, skipped: list[SkippedTensor] | None
) -> torch.Tensor | None:
    """``tensor`` as stored when it holds floats; else None (recorded in ``skipped``). Half types
    are widened only where a computation needs it: the SVD's stack (float32: the reference gives
    the same values on upcast weights), a block at a time for the temporal metrics, never for
    the pooled statistics."""
    if not tensor.is_floating_point():
        if skipped is not None:
            why = Reason(ReasonCode.NOT_FLOAT, f"{tensor.dtype} tensor: metrics need floats")
            skipped.append(SkippedTensor(name, why))
        return None
    return tensor


def _nonfinite(matrix: torch.Tensor) -> str | None:
    if all_finite(matrix):
        return None
    nan, inf = count_nonfinite(matrix)
    return f"holds {nan} NaN and {inf} inf values of {matrix.numel()}"
