"""Weight metrics of one checkpoint, streamed tensor by tensor from a ``TensorSource``.

Tensors are grouped by matrix shape; each group is read in chunks of at most ``max_batch_bytes``,
stacked, and given one batched SVD (``torch.linalg.svdvals``), so memory stays bounded by the
chunk size however large the checkpoint is, and small per-head matrices share one LAPACK call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from dyntools.metrics.allocator import MMAP_THRESHOLD_BYTES, return_large_frees
from dyntools.metrics.finite import all_finite, count_nonfinite
from dyntools.metrics.matrices import (
    ROLES,
    Matrix,
    TensorRole,
    default_hook_point,
    default_role,
    matrix_views,
    plan_matrices,
)
from dyntools.metrics.pooled import (
    DEFAULT_IN_MEMORY_BYTES,
    PooledAccumulator,
    paper_features,
    pooled_rows,
)
from dyntools.metrics.records import MetricValue, SkippedTensor, TensorSource
from dyntools.metrics.registry import REGISTRY, RESHAPED_PREFIX, WEIGHT_FAMILIES, select_metrics
from dyntools.metrics.spectrum import (
    CONV_KERNEL_METRICS,
    MATRIX_METRICS,
    Column,
    conv_kernel_metrics,
    matrix_batch,
)
from dyntools.metrics.temporal import TEMPORAL_METRICS
from dyntools.metrics.threads import SERIAL_BELOW, single_threaded

DEFAULT_MAX_BATCH_BYTES = 32 * 2**20
# torch.linalg.LinAlgError, which torch's stubs do not export.
_LINALG_ERROR: type[Exception] = torch.linalg.LinAlgError  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WeightMetrics:
    """Everything computed for one checkpoint.

    ``values``: per-matrix (per head when split) and temporal rows, in selection order;
    ``pooled``: the mean/median/var rows of all weights and biases; ``skipped``: selected
    tensors that got no per-matrix metrics, and why.
    """

    values: tuple[MetricValue, ...]
    pooled: tuple[MetricValue, ...]
    skipped: tuple[SkippedTensor, ...]

    def paper_features(self) -> tuple[MetricValue, ...]:
        """The paper's 14 HMM features (see ``pooled.paper_features``)."""
        return paper_features(self.values, self.pooled)

    def rows(self) -> tuple[MetricValue, ...]:
        return self.values + self.pooled


@dataclass
class _Selection:
    matrix: list[str]
    conv: list[str]
    temporal: list[str]
    pooled: list[str]
    matrix_svd: bool = field(init=False)
    conv_svd: bool = field(init=False)

    def __post_init__(self) -> None:
        self.matrix_svd = any(MATRIX_METRICS[name][1] for name in self.matrix)
        self.conv_svd = bool(self.conv)


def compute_weight_metrics(
    source: TensorSource,
    names: Sequence[str],
    *,
    metrics: Iterable[str] | None = None,
    hook_points: Mapping[str, str] | None = None,
    heads: Mapping[str, int] | None = None,
    roles: Mapping[str, TensorRole] | None = None,
    previous: TensorSource | None = None,
    initial: TensorSource | None = None,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    pooled_in_memory_bytes: int = DEFAULT_IN_MEMORY_BYTES,
) -> WeightMetrics:
    """Weight metrics of the tensors ``names`` of one checkpoint.

    ``metrics``: names from the matrix, conv, pooled and temporal families (default: all, the
    temporal ones only when ``previous``/``initial`` is given).
    ``hook_points``: tensor -> hook point (default: the name minus its last component).
    ``heads``: tensor -> number of heads to split it into (W_Q/W_K/W_V per-head option).
    ``roles``: tensor -> "weight" | "bias" | "other" for the pooled statistics (default:
    ``units.default_role``). ``previous``/``initial``: the previous and the first checkpoint,
    for ``relative_update`` and ``cosine_to_init``.
    """
    chosen = select_metrics(metrics, *WEIGHT_FAMILIES)
    if metrics is None:
        # By default a temporal metric is computed only when its other checkpoint is given.
        given = {"previous": previous is not None, "initial": initial is not None}
        chosen = tuple(
            name
            for name in chosen
            if name not in TEMPORAL_METRICS or given[TEMPORAL_METRICS[name][1]]
        )
    families = {name: REGISTRY[name].family for name in chosen}
    selection = _Selection(
        matrix=[n for n in chosen if families[n] == "matrix"],
        conv=[n for n in chosen if families[n] == "conv"],
        temporal=[n for n in chosen if families[n] == "temporal"],
        pooled=[n for n in chosen if families[n] == "pooled"],
    )
    names = list(dict.fromkeys(names))
    heads = dict(heads or {})
    roles = dict(roles or {})
    for option, mapping in (("heads", heads), ("roles", roles)):
        stray = sorted(set(mapping) - set(names))
        if stray:
            raise ValueError(f"{option} names tensors that are not selected: {stray}")
    bad_roles = {name: role for name, role in roles.items() if role not in ROLES}
    if bad_roles:
        raise ValueError(f"unknown tensor roles {bad_roles}; known: {list(ROLES)}")

    shapes = {name: tuple(source.shape(name)) for name in names}
    tensor_roles = {name: roles.get(name) or default_role(name, shapes[name]) for name in names}
    need_units = bool(selection.matrix or selection.conv or selection.temporal)
    units: dict[str, list[Matrix]] = {}
    skipped: list[SkippedTensor] = []
    order = 0
    for name in names:
        hook = (hook_points or {}).get(name) or default_hook_point(name)
        planned, why = plan_matrices(name, shapes[name], hook, heads.get(name), order)
        order += max(len(planned), 1)
        if not need_units:
            continue
        if planned:
            units[name] = planned
        elif why is not None:
            skipped.append(SkippedTensor(name, why))

    run = _Run(source, selection, units, shapes, previous, initial)
    largest = max((_numel(shape) for shape in shapes.values()), default=0)
    if 4 * largest >= MMAP_THRESHOLD_BYTES:
        # Bounded memory needs large freed tensors returned, not kept in a fragmenting heap.
        return_large_frees()
    with single_threaded(largest < SERIAL_BELOW):
        pooled = _read_and_compute(
            run, names, tensor_roles, skipped, max_batch_bytes, pooled_in_memory_bytes
        )
    wanted = set(selection.pooled)
    return WeightMetrics(
        values=run.ordered_rows(chosen),
        pooled=tuple(row for row in pooled if row.metric in wanted),
        skipped=tuple(skipped),
    )


def _read_and_compute(
    run: _Run,
    names: list[str],
    roles: Mapping[str, TensorRole],
    skipped: list[SkippedTensor],
    max_batch_bytes: int,
    pooled_in_memory_bytes: int,
) -> list[MetricValue]:
    """Reads every selected tensor once, computing the per-matrix rows into ``run`` on the way;
    returns the pooled rows."""
    selection = run.selection
    pooled_of = {
        role: PooledAccumulator(in_memory_bytes=pooled_in_memory_bytes)
        for role in ("weight", "bias")
        if any(metric.endswith("_" + role[0]) for metric in selection.pooled)
    }
    chunks = _chunks(run.units, run.shapes, max_batch_bytes, with_temporal=bool(selection.temporal))
    for chunk in chunks:
        run.process(chunk, roles, pooled_of, skipped)
    # Tensors that are pooled but have no units (biases, or every tensor when no per-matrix
    # metric is selected) are read here, one at a time.
    for name in names:
        accumulator = pooled_of.get(roles[name])
        if accumulator is not None and name not in run.read_names:
            tensor = run.read(name, run.shapes[name], skipped)
            if tensor is not None:
                accumulator.add(tensor)
    return pooled_rows(
        *(
            pooled_of[role].finish(run.rereader([n for n in names if roles[n] == role]))
            if role in pooled_of
            else None
            for role in ("weight", "bias")
        )
    )


def _chunks(
    units: Mapping[str, list[Matrix]],
    shapes: Mapping[str, tuple[int, ...]],
    max_bytes: int,
    *,
    with_temporal: bool,
) -> Iterator[list[str]]:
    """Tensor names grouped by unit kind and (oriented) shape, cut into chunks of at most
    ``max_bytes``."""
    groups: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name, planned in units.items():
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


def _oriented(unit: Matrix) -> tuple[int, ...]:
    """A matrix unit's shape as it is stacked: tall. Every metric here is the same for a matrix
    and its transpose, so a 768 x 3072 and a 3072 x 768 matrix share one batched SVD."""
    if unit.kind == "matrix" and unit.shape[0] < unit.shape[1]:
        return (unit.shape[1], unit.shape[0])
    return unit.shape


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
        units: Mapping[str, list[Matrix]],
        shapes: Mapping[str, tuple[int, ...]],
        previous: TensorSource | None,
        initial: TensorSource | None,
    ) -> None:
        self.source = source
        self.selection = selection
        self.units = units
        self.shapes = shapes
        self.others = {"previous": previous, "initial": initial}
        # unit order -> metric -> row; ordered by the selection at the end.
        self.rows: dict[int, dict[str, MetricValue]] = {}
        self.read_names: set[str] = set()

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
        """The tensor in float32 (float64 kept), or None (recorded in ``skipped``)."""
        self.read_names.add(name)
        tensor = self.source.read(name)
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"tensor {name!r} was announced with shape {list(shape)} but read as "
                f"{list(tensor.shape)}: the checkpoint changed while it was read; run again"
            )
        return _as_float(name, tensor, skipped)

    def rereader(self, names: list[str]) -> Callable[[], Iterator[torch.Tensor]]:
        """Reads ``names`` again, one at a time (the pooled median's second pass)."""

        def again() -> Iterator[torch.Tensor]:
            for name in names:
                tensor = _as_float(name, self.source.read(name), None)
                if tensor is not None:
                    yield tensor

        return again

    def process(
        self,
        chunk: list[str],
        roles: Mapping[str, TensorRole],
        pooled_of: Mapping[str, PooledAccumulator],
        skipped: list[SkippedTensor],
    ) -> None:
        """Reads one chunk of same-shape tensors and computes every unit's metrics."""
        collected: list[tuple[Matrix, torch.Tensor]] = []
        for name in chunk:
            tensor = self.read(name, self.shapes[name], skipped)
            if tensor is None:
                continue
            accumulator = pooled_of.get(roles[name])
            if accumulator is not None:
                accumulator.add(tensor)
            units = self.units[name]
            matrices = matrix_views(tensor, units)
            versions = {which: self._other_version(which, name, units) for which in self._needs()}
            for i, (unit, matrix) in enumerate(zip(units, matrices, strict=True)):
                collected.append((unit, matrix))
                for metric in self.selection.temporal:
                    function, which = TEMPORAL_METRICS[metric]
                    other = versions[which]
                    if isinstance(other, str):
                        self._put(unit, metric, None, other)
                    else:
                        self._put(unit, metric, *function(matrix, other[i]))
        if not collected:
            return
        units = [u for u, _ in collected]
        stack = _stack([m for _, m in collected])
        # One check per chunk; only a chunk holding NaN/inf is checked matrix by matrix.
        if not all_finite(stack):
            keep = []
            for i, unit in enumerate(units):
                problem = _nonfinite(stack[i])
                if problem is None:
                    keep.append(i)
                    continue
                for metric in self._unit_metrics(unit):
                    self._put(unit, metric, None, f"{unit.kind} {problem}")
            if not keep:
                return
            units = [units[i] for i in keep]
            stack = stack[keep]
        self._compute(units, stack)

    def _needs(self) -> set[str]:
        return {TEMPORAL_METRICS[metric][1] for metric in self.selection.temporal}

    def _other_version(
        self, which: str, name: str, units: list[Matrix]
    ) -> list[torch.Tensor] | str:
        """This tensor's units in the previous/initial checkpoint, or why there are none."""
        source = self.others[which]
        if source is None:
            return f"no {which} checkpoint given"
        try:
            shape = tuple(source.shape(name))
        except KeyError:
            return f"{name!r} is not in the {which} checkpoint"
        if shape != self.shapes[name]:
            return f"shape changed from {list(shape)} ({which}) to {list(self.shapes[name])}"
        tensor = _as_float(name, source.read(name), None)
        if tensor is None:
            return f"{which} version of {name!r} is not a float tensor"
        return matrix_views(tensor, units)

    def _unit_metrics(self, unit: Matrix) -> list[str]:
        if unit.kind == "matrix":
            return list(self.selection.matrix)
        kernel = [m for m in self.selection.matrix if m in CONV_KERNEL_METRICS]
        return kernel + list(self.selection.conv)

    def _put(self, unit: Matrix, metric: str, value: float | None, reason: str | None) -> None:
        row = MetricValue(unit.hook_point, unit.label, metric, value, reason)
        self.rows.setdefault(unit.order, {})[metric] = row

    def _compute(self, units: list[Matrix], stack: torch.Tensor) -> None:
        if units[0].kind == "matrix":
            self._matrix_columns(units, stack, "", self.selection.matrix, self.selection.matrix_svd)
            return
        kernel = [m for m in self.selection.matrix if m in CONV_KERNEL_METRICS]
        if kernel:
            columns = conv_kernel_metrics(stack)
            for metric in kernel:
                self._emit(units, metric, columns[metric])
        if self.selection.conv:
            reshaped = stack.reshape(stack.shape[0], stack.shape[1], -1)
            bases = [m.removeprefix(RESHAPED_PREFIX) for m in self.selection.conv]
            self._matrix_columns(units, reshaped, RESHAPED_PREFIX, bases, True)

    def _matrix_columns(
        self, units: list[Matrix], stack: torch.Tensor, prefix: str, bases: list[str], svd: bool
    ) -> None:
        try:
            batch = matrix_batch(stack, with_svd=svd)
        except _LINALG_ERROR as error:
            if len(units) == 1:
                for base in bases:
                    self._put(units[0], prefix + base, None, f"SVD did not converge: {error}")
                return
            # Retry one matrix at a time so that one bad matrix does not sink the batch.
            for i, unit in enumerate(units):
                self._matrix_columns([unit], stack[i : i + 1], prefix, bases, svd)
            return
        for base in bases:
            self._emit(units, prefix + base, MATRIX_METRICS[base][0](batch))

    def _emit(self, units: list[Matrix], metric: str, column: Column) -> None:
        # Rows are made here rather than through _put: on small models they are a measurable
        # share of the time per checkpoint.
        values = column.values.tolist()  # Python floats
        flags = column.undefined.tolist() if column.undefined is not None else None
        missing = float("nan") if column.keep_nan else None
        rows = self.rows
        for i, unit in enumerate(units):
            if flags is not None and flags[i]:
                row = MetricValue(unit.hook_point, unit.label, metric, missing, column.reason)
            else:
                row = MetricValue(unit.hook_point, unit.label, metric, values[i])
            slot = rows.get(unit.order)
            if slot is None:
                slot = rows[unit.order] = {}
            slot[metric] = row


def _stack(matrices: list[torch.Tensor]) -> torch.Tensor:
    """One (B, ...) stack of same-shape units (wide matrices transposed, see ``_oriented``), in
    float64 if any of them is."""
    dtype = torch.float64 if any(m.dtype == torch.float64 for m in matrices) else torch.float32
    oriented = [(m.mT if m.dim() == 2 and m.shape[0] < m.shape[1] else m) for m in matrices]
    if len(oriented) == 1:
        # A view: the SVD copies its input anyway, so stacking one matrix would copy it twice.
        return oriented[0].to(dtype)[None]
    return torch.stack([m.to(dtype) for m in oriented])


def _as_float(
    name: str, tensor: torch.Tensor, skipped: list[SkippedTensor] | None
) -> torch.Tensor | None:
    if not tensor.is_floating_point():
        if skipped is not None:
            skipped.append(SkippedTensor(name, f"{tensor.dtype} tensor: metrics need floats"))
        return None
    # float32 or better: half types are upcast (the SVD needs it; the reference gives the same
    # values on the upcast weights).
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def _nonfinite(matrix: torch.Tensor) -> str | None:
    if all_finite(matrix):
        return None
    nan, inf = count_nonfinite(matrix)
    return f"holds {nan} NaN and {inf} inf values of {matrix.numel()}"
