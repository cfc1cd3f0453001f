"""Per-step activation statistics recorded inside the training loop (fast.ai's "colorful
dimension", written while the model trains).

    with ActivationStats(model, "runs/seed0") as stats:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            ...

Forward hooks on the chosen modules record, for every training step, each module's output:
mean, std, the share of ``|a|`` below the dead threshold, and a histogram of ``|a|`` with fixed
edges (40 bins over [0, 10) by default) with underflow, overflow and non-finite counts. Rows go
to ``RUN_DIR/step_stats/part-NNNNNN.arrows`` (format: ``dyntools.checkpoints.step_stats``).

Which forward passes count, and their step:

- Only forward passes of ``model`` (the root) in training mode are recorded; ``model.eval()``
  passes (validation) are not.
- Without ``set_step``, every training-mode forward pass of the root is one step: 0, 1, 2, ...
  from ``start_step``. In a loop with one forward pass per optimizer step, a row's step is the
  number of optimizer steps taken before it: the step of a checkpoint saved with those weights.
- ``set_step(global_step)`` before the forward passes of a step takes over the numbering (for
  gradient accumulation, and for callbacks that know the trainer's ``global_step``): the passes
  that follow belong to that step until the next call. Every call of a module within one step
  (micro-batches, a module used twice) is pooled into one row.
- ``every=N`` records the steps divisible by N; the others cost one attribute check per module.

Where the work happens. On an accelerator the hook launches a few kernels on the output's
device (no synchronisation, no copy of the activation): per-bin counts and two moments. On the
CPU the hook copies the output (a memcpy: a later in-place operation, or the next step reusing
memory, cannot change what is measured). Every 0.25 s, 512 entries or 32 MB the copies and
results are handed over in one batch; the outputs of one module are then summarised together,
a few steps per set of vectorised torch calls, so that the fixed cost of a torch call is not
paid per step. With ``background=True`` a thread does that (and copies the accelerator's small
results back, so training never waits for the device); with ``background=False`` the training
thread does it at the hand-off. The default is the thread when the model is on an accelerator,
else the training thread: on the CPU a second Python thread contends for the interpreter lock
at every torch call, and measured slower on three of the four sample tasks
(bench/bench_step_stats.py). At most two batches wait for the thread; then training waits, so
memory stays bounded. Chunks are appended to the file every ``flush_seconds`` (and every
``flush_steps`` recorded steps, and on ``flush``/``close``). An error there (a full disk) is
raised in the training thread at a later step or by ``close()``, naming the file. Call
``close()`` (or use ``with``): until then the hooks hold the model; a run that never closes is
closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple

import numpy as np
import torch
from torch import nn

from dyntools.checkpoints.step_stats import (
    StepStatsChunk,
    StepStatsHeader,
    StepStatsRow,
    StepStatsWriter,
)
from dyntools.hookpoints import select_paths
from dyntools.metrics.builtin import DEFAULT_DEAD_THRESHOLD
from dyntools.metrics.histogram import MAX_BINS, HistogramSpec
from dyntools.models.outputs import first_tensor
from dyntools.roles import is_activation_function

__all__ = ["ActivationStats", "default_modules"]

_CONTAINERS: Final = (nn.ModuleList, nn.Sequential)


def default_modules(model: nn.Module) -> list[str]:
    """The modules whose outputs tell most: every activation-function module (ReLU, GELU,
    transformers' NewGELUActivation, ...: where units die); a model without any gets its blocks
    (the items of its ``ModuleList``s and ``Sequential``s), else its direct children. Identity
    modules are never chosen (their output is their input)."""
    named = [(path, module) for path, module in model.named_modules() if path]
    chosen = [
        path
        for path, module in named
        if is_activation_function(type(module).__name__) and not any(module.children())
    ]
    if chosen:
        return chosen
    blocks: list[str] = []
    for path, _ in named:  # parents come before their children: outermost blocks only
        inside = any(path.startswith(block + ".") for block in blocks)
        if not inside and isinstance(_parent(model, path), _CONTAINERS):
            blocks.append(path)
    blocks = [path for path in blocks if not isinstance(model.get_submodule(path), nn.Identity)]
    if blocks:
        return blocks
    return [path for path, module in model.named_children() if not isinstance(module, nn.Identity)]


def _parent(model: nn.Module, path: str) -> nn.Module:
    owner, _, _ = path.rpartition(".")
    return model.get_submodule(owner) if owner else model


def _round_up(value: float, dtype: np.dtype[Any]) -> float:
    """The smallest number of ``dtype`` >= ``value``: for x of that dtype, ``x < value`` exactly
    when ``x < result`` (so edges given in float64 cut float32 values where they should)."""
    cast = np.asarray(value, dtype=dtype)
    if float(cast) < value:
        cast = np.nextafter(cast, np.asarray(np.inf, dtype=dtype))
    return float(cast)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    return np.dtype(np.float64 if dtype == torch.float64 else np.float32)


@dataclass(frozen=True)
class _Plan:
    """The histogram's edges and the dead threshold, with what each code path needs."""

    bins: int
    low: float
    high: float
    edges: tuple[float, ...]  # float64, as HistogramSpec.edges (and the probe histograms)
    dead_threshold: float
    # low == 0 and a bin width 2**k: floor(|a| / width) is the exact bin, no correction pass.
    exact_scale: float | None
    _boundaries: dict[tuple[str, torch.dtype], tuple[torch.Tensor, int, tuple[int, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, bins: int, low: float, high: float, dead_threshold: float) -> _Plan:
        spec = HistogramSpec(bins=bins, low=low, high=high)
        edges = tuple(float(e) for e in spec.edges().tolist())
        width = (high - low) / bins
        exponent = math.frexp(width)
        dyadic = exponent[0] == 0.5 and all(e == i * width for i, e in enumerate(edges))
        return cls(
            bins=bins,
            low=low,
            high=high,
            edges=edges,
            dead_threshold=dead_threshold,
            exact_scale=1.0 / width if low == 0.0 and dyadic else None,
        )

    def threshold_for(self, dtype: torch.dtype) -> float:
        """The dead threshold as a value of ``dtype``, rounded up (``|a| < t`` stays exact)."""
        return _round_up(self.dead_threshold, _numpy_dtype(dtype))

    def boundaries(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, int, tuple[int, ...]]:
        """For the device path: the edges and the dead threshold as one sorted boundary tensor
        of ``dtype`` (each rounded up, so comparisons agree with float64), then +inf; with the
        threshold's position and each edge's."""
        key = (str(device), dtype)
        if key not in self._boundaries:
            np_dtype = _numpy_dtype(dtype)
            marked = sorted(
                [(_round_up(e, np_dtype), 1, i) for i, e in enumerate(self.edges)]
                + [(_round_up(self.dead_threshold, np_dtype), 0, -1)]
            )
            values = [value for value, _, _ in marked] + [math.inf]
            dead_at = next(pos for pos, (_, kind, _) in enumerate(marked) if kind == 0)
            edge_at = tuple(pos for pos, (_, kind, _) in enumerate(marked) if kind == 1)
            tensor = torch.tensor(values, dtype=dtype, device=device)
            self._boundaries[key] = (tensor, dead_at, edge_at)
        return self._boundaries[key]


@dataclass
class _Partial:
    """Statistics of some values: mergeable across calls of a module within one step."""

    count: int = 0
    finite: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from ``mean`` (finite values)
    dead: int = 0
    counts: np.ndarray[Any, np.dtype[np.int64]] | None = None
    underflow: int = 0
    overflow: int = 0
    nonfinite: int = 0

    def merge(self, other: _Partial) -> None:
        # Chan et al.'s pairwise update: exact mean and M2 of the union.
        total = self.finite + other.finite
        if other.finite:
            delta = other.mean - self.mean
            self.mean += delta * other.finite / total
            self.m2 += other.m2 + delta * delta * self.finite * other.finite / total
        self.finite = total
        self.count += other.count
        self.dead += other.dead
        self.underflow += other.underflow
        self.overflow += other.overflow
        self.nonfinite += other.nonfinite
        if other.counts is not None:
            self.counts = other.counts.copy() if self.counts is None else self.counts + other.counts

    def row(self, step: int, module: str, bins: int) -> StepStatsRow:
        finite, count = self.finite, self.count
        return StepStatsRow(
            step=step,
            module=module,
            count=count,
            mean=self.mean if finite else math.nan,
            std=math.sqrt(self.m2 / (finite - 1)) if finite >= 2 else math.nan,
            dead_fraction=self.dead / count if count else math.nan,
            counts=self.counts if self.counts is not None else np.zeros(bins, dtype=np.int64),
            underflow=self.underflow,
            overflow=self.overflow,
            nonfinite=self.nonfinite,
        )


def cpu_partials(values: Sequence[torch.Tensor], plan: _Plan) -> list[_Partial]:
    """The statistics of flat float32/float64 CPU tensors of one size and dtype (one module's
    outputs over several steps), all at once: one set of vectorised passes over the stacked
    values, so the fixed cost of each torch call is paid once, not once per step.

    With the default kind of histogram (low 0, a bin width of 2**k) no search is needed:
    ``|a| * 2**k`` is exact, so its integer part is the bin. Other ranges, and outputs holding
    NaN or inf, take ``device_partial``'s boundary search (exact too, several times slower).
    """
    if plan.exact_scale is None:
        return [_searched(v, plan) for v in values]
    stacked = torch.stack(list(values))  # a copy: the passes below work in place
    size = stacked.shape[1]
    sums = stacked.sum(dim=1)
    if not bool(torch.isfinite(sums).all()):  # NaN or inf somewhere (or a float32 overflow)
        return [_searched(v, plan) for v in values]
    means = sums / size
    # A vector norm, not a BLAS dot: a multi-threaded BLAS call from a second thread can stall.
    m2 = torch.linalg.vector_norm(stacked - means[:, None], dim=1).double().square()
    magnitude = stacked.abs_()
    # Dead values as float passes (a bool tensor's sum is slower): sign(min(|a| - t, 0)) is -1
    # exactly where |a| < t (float subtraction keeps the sign), and a float32 sum of at most
    # 2**24 ones is exact.
    threshold = plan.threshold_for(stacked.dtype)
    below = (magnitude - threshold).clamp_(max=0).sign_()
    dead = below.sum(dim=1, dtype=torch.float64 if size > 2**24 else None).neg_()
    bins = plan.bins
    index = (
        magnitude.mul_(plan.exact_scale)
        .clamp_(max=bins)
        .to(torch.uint8 if bins < 255 else torch.int32)
    )
    found = torch.stack([torch.bincount(row, minlength=bins + 1) for row in index])
    counts = found.numpy()
    return [
        _Partial(
            count=size,
            finite=size,
            mean=mean,
            m2=squares,
            dead=round(below),
            counts=counts[row, :bins].astype(np.int64),
            overflow=int(counts[row, bins]),
        )
        for row, (mean, squares, below) in enumerate(
            zip((sums.double() / size).tolist(), m2.tolist(), dead.tolist(), strict=True)
        )
    ]


def _searched(values: torch.Tensor, plan: _Plan) -> _Partial:
    return partial_from_device(*device_partial(values, plan), plan, values.dtype)


def device_partial(values: torch.Tensor, plan: _Plan) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics of a flat float tensor computed where it lives, without synchronising:
    the mean and M2 of its finite values, and the counts per boundary interval
    (``partial_from_device`` reads them back)."""
    finite = torch.isfinite(values)
    n = finite.sum()
    mean = torch.where(finite, values, 0).sum() / n.clamp(min=1)
    deviations = torch.where(finite, values - mean, 0)
    m2 = deviations.square().sum()
    magnitude = torch.where(finite, values.abs(), math.inf)
    boundaries, _, _ = plan.boundaries(values.device, values.dtype)
    bucket = torch.bucketize(magnitude, boundaries, right=True)
    counts = torch.bincount(bucket, minlength=boundaries.numel() + 1)
    return torch.stack([mean, m2]), counts


def partial_from_device(
    moments: torch.Tensor, counts: torch.Tensor, plan: _Plan, dtype: torch.dtype
) -> _Partial:
    """A ``_Partial`` from ``device_partial``'s results (copies a few numbers to the CPU)."""
    mean, m2 = (float(v) for v in moments.cpu().tolist())
    found = np.asarray(counts.cpu().tolist(), dtype=np.int64)
    _, dead_at, edge_at = plan.boundaries(counts.device, dtype)
    # below[k]: values < boundary k; the last boundary is +inf, and non-finite values come last.
    below = np.cumsum(found)
    count, nonfinite = int(below[-1]), int(found[-1])
    edge_below = below[list(edge_at)]
    return _Partial(
        count=count,
        finite=count - nonfinite,
        mean=mean if count > nonfinite else 0.0,
        m2=m2,
        dead=int(below[dead_at]),
        counts=np.diff(edge_below).astype(np.int64),
        underflow=int(edge_below[0]),
        overflow=int(below[-2] - edge_below[-1]),
        nonfinite=nonfinite,
    )


# What the training thread hands to the worker: batches of entries, in call order. An entry is
# (step, module index, values) for a recorded output (a CPU tensor, or a _DeviceResult), or
# (step, -1, None) when a step ends.
_Entry = tuple[int, int, "torch.Tensor | _DeviceResult | None"]


class _DeviceResult(NamedTuple):
    """``device_partial``'s results, still on the device, and the stream that computes them."""

    moments: torch.Tensor
    counts: torch.Tensor
    dtype: torch.dtype
    stream: Any  # a torch.cuda.Stream, or None off CUDA

    def partial(self, plan: _Plan) -> _Partial:
        # Copy on the stream that computes the results, so the copy waits for those kernels
        # (training may run on a stream of its own).
        context = torch.cuda.stream(self.stream) if self.stream is not None else None
        with context or contextlib.nullcontext():
            return partial_from_device(self.moments, self.counts, plan, self.dtype)


class _Flush(NamedTuple):
    done: threading.Event
    last: bool = False


# The training thread hands its entries over when they hold this many values' bytes, this many
# entries, or are this old: batches amortise the thread hand-off and the cost of each torch call.
_HANDOFF_BYTES: Final = 32 * 2**20
_HANDOFF_ENTRIES: Final = 512
_HANDOFF_SECONDS: Final = 0.25
# Batches waiting for the worker; then the training thread waits (memory stays bounded).
_BACKLOG: Final = 2
# Outputs summarised together at most (several make one set of torch calls do more; more than
# the cache holds makes every pass over them slower).
_STACK_BYTES: Final = 2**20


class ActivationStats:
    """Record per-step statistics of module outputs while ``model`` trains (see the module
    docstring); a context manager, or call ``close()``.

    ``modules``: module paths or patterns (``layers.*.act``, ``re:...``: as hook points are
    selected elsewhere); ``None`` picks ``default_modules(model)``. ``every``: record the steps
    divisible by it. ``bins`` and ``range``: the histogram of ``|a|`` (fast.ai: 40 over [0, 10)).
    ``dead_threshold``: ``|a|`` below it counts as dead (the ``dead_fraction`` metric's default).
    ``start_step``: the first step's number. ``flush_seconds``, ``flush_steps``: how often a
    chunk is appended to the file. ``background``: finish the statistics and write in a thread;
    ``None`` (the default): when the model is on an accelerator.
    """

    def __init__(
        self,
        model: nn.Module,
        run_dir: str | Path,
        modules: str | Sequence[str] | None = None,
        every: int = 1,
        bins: int = 40,
        range: tuple[float, float] = (0.0, 10.0),  # shadows the builtin: fast.ai's name
        *,
        dead_threshold: float = DEFAULT_DEAD_THRESHOLD,
        start_step: int = 0,
        flush_seconds: float = 2.0,
        flush_steps: int = 1000,
        background: bool | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        _check_count("every", every, 1)
        _check_count("start_step", start_step, 0)
        _check_count("flush_steps", flush_steps, 1)
        _check_count("bins", bins, 1)
        if bins > MAX_BINS:
            raise ValueError(f"bins must be at most {MAX_BINS}, got {bins}")
        low, high = (float(v) for v in range)
        threshold = float(dead_threshold)
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"dead_threshold must be a finite number >= 0, got {dead_threshold!r}")
        if not (math.isfinite(flush_seconds) and flush_seconds >= 0):
            raise ValueError(f"flush_seconds must be a finite number >= 0, got {flush_seconds!r}")
        self._plan = _Plan.of(bins, low, high, threshold)  # HistogramSpec checks the range
        named = dict(model.named_modules())
        if modules is None:
            chosen = default_modules(model)
            if not chosen:
                raise ValueError(
                    f"{type(model).__name__} has no sub-modules to record: name modules"
                )
        else:
            chosen = select_paths([path for path in named if path], modules)
        self.modules: tuple[str, ...] = tuple(chosen)
        self.every = every
        self.edges = self._plan.edges
        # Training-thread state.
        self._step = start_step
        self._explicit = False  # set_step was called: no automatic numbering
        self._forwarded = False  # a training forward pass happened in the current step
        self._recording = False
        self._recorded_current = False  # an output of the current step was recorded
        self._entries: list[_Entry] = []
        self._entry_bytes = 0
        self._handed_at = time.monotonic()
        self._closed = False
        self._error: BaseException | None = None  # set by the worker
        header = StepStatsHeader(
            bins=bins,
            low=low,
            high=high,
            edges=self.edges,
            dead_threshold=threshold,
            every=every,
            modules={path: type(named[path]).__name__ for path in self.modules},
        )
        self._writer = StepStatsWriter(run_dir, header)
        self.path = self._writer.path
        # Worker state (the worker thread's, or the training thread's when background=False).
        self._flush_seconds = flush_seconds
        self._flush_steps = flush_steps
        self._open: dict[tuple[int, int], _Partial] = {}
        self._chunk = _ChunkBuilder(bins)
        self._buffered_steps = 0
        self._written_at = time.monotonic()
        self._queue: queue.Queue[list[_Entry] | _Flush] | None = None
        self._thread: threading.Thread | None = None
        if background is None:
            background = any(p.device.type != "cpu" for p in model.parameters())
        self.background = background
        if background:
            self._queue = queue.Queue(maxsize=_BACKLOG)
            self._thread = threading.Thread(
                target=self._work, name=f"dyntools-step-stats:{self.path.name}", daemon=True
            )
            self._thread.start()
        self._handles = [model.register_forward_pre_hook(self._before_forward)]
        for index, path in enumerate(self.modules):
            self._handles.append(named[path].register_forward_hook(self._recorder(index)))
        # A run that ends without close() (an uncaught error in a script) still writes its rows.
        atexit.register(self._close_at_exit)

    # -- the training thread ---------------------------------------------------------------

    @property
    def step(self) -> int:
        """The step the next recorded forward passes belong to."""
        return self._step

    def set_step(self, step: int) -> None:
        """The training forward passes from now on belong to ``step`` (e.g. the trainer's
        ``global_step``: optimizer steps taken so far); turns the automatic numbering off."""
        _check_count("step", step, 0)
        self._explicit = True
        if step != self._step:
            self._end_step()
            self._step = step
        # Also when the training code calls a submodule rather than the root (a
        # LightningModule's training_step calling self.net(x)): the modules' own training flag
        # then keeps evaluation passes out.
        self._recording = step % self.every == 0

    def _before_forward(self, model: nn.Module, _args: object) -> None:
        if not model.training:
            self._recording = False
            return
        if not self._explicit:
            if self._forwarded:
                self._end_step()
                self._step += 1
            self._forwarded = True
        self._recording = self._step % self.every == 0

    def _end_step(self) -> None:
        if self._error is not None:
            self._raise()
        if not self._recorded_current:
            return
        self._recorded_current = False
        self._entries.append((self._step, -1, None))
        if (
            self._entry_bytes >= _HANDOFF_BYTES
            or len(self._entries) >= _HANDOFF_ENTRIES
            or time.monotonic() - self._handed_at >= _HANDOFF_SECONDS
        ):
            self._hand_off()

    def _recorder(self, index: int) -> Callable[[nn.Module, object, object], None]:
        plan = self._plan
        entries = self._entries  # the same list for the object's life: hand-offs copy it

        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if not self._recording or not _module.training:
                return
            tensor = first_tensor(output)
            if tensor is None or tensor.is_complex() or tensor.numel() == 0:
                return
            flat = tensor.detach().reshape(-1)
            values: torch.Tensor | _DeviceResult
            if flat.device.type == "cpu":
                if flat.dtype not in (torch.float32, torch.float64):
                    flat = flat.to(torch.float32 if flat.is_floating_point() else torch.float64)
                elif flat.data_ptr() == tensor.data_ptr():
                    # A copy: the output may change in place before the statistics are taken
                    # (a ReLU(inplace=True) downstream, the next step's buffers).
                    flat = flat.clone()
                values = flat
                self._entry_bytes += flat.numel() * flat.element_size()
            else:
                if flat.dtype not in (torch.float32, torch.float64):
                    flat = flat.float()
                moments, counts = device_partial(flat, plan)  # kernels launched, no waiting
                stream = torch.cuda.current_stream(flat.device) if flat.is_cuda else None
                values = _DeviceResult(moments, counts, flat.dtype, stream)
            self._recorded_current = True
            entries.append((self._step, index, values))

        return hook

    def _hand_off(self) -> None:
        batch = self._entries[:]
        self._entries.clear()
        self._entry_bytes = 0
        self._handed_at = time.monotonic()
        if batch:
            self._submit(batch)

    def _submit(self, item: list[_Entry] | _Flush) -> None:
        if self._queue is None:
            self._handle(item)
        else:
            self._queue.put(item)  # waits while _BACKLOG batches are waiting

    def flush(self) -> None:
        """Write every finished step now (the current step stays open: more forward passes may
        belong to it); returns when the chunk is on disk."""
        if self._closed:
            raise ValueError(f"activation statistics into {self.path} are closed")
        self._sync(last=False)
        if self._error is not None:
            self._raise()

    def close(self) -> None:
        """Remove the hooks (the model is left as it was), write what is left (the current step
        included) and close the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        try:
            if self._recorded_current:
                self._recorded_current = False
                self._entries.append((self._step, -1, None))
            self._sync(last=True)  # the worker finishes the open steps, writes, and ends
            if self._thread is not None:
                self._thread.join()
        finally:
            self._writer.close()
        if self._error is not None:
            self._raise()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except RuntimeError as error:  # at exit there is nobody left to raise to
            print(f"dyntools: {error}", file=sys.stderr)

    def _sync(self, *, last: bool) -> None:
        self._hand_off()
        done = threading.Event()
        self._submit(_Flush(done, last=last))
        done.wait()

    def _raise(self) -> None:
        raise RuntimeError(
            f"recording activation statistics into {self.path} failed: {self._error}"
        ) from self._error

    def __enter__(self) -> ActivationStats:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(RuntimeError):  # the training's own error matters more
            self.close()

    # -- the worker (a thread, or the training thread when background=False) ----------------

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            self._handle(item)
            if isinstance(item, _Flush) and item.last:
                return

    def _handle(self, item: list[_Entry] | _Flush) -> None:
        try:
            if self._error is None:
                if isinstance(item, _Flush):
                    if item.last:
                        self._finish(sorted({step for step, _ in self._open}))
                    self._write()
                else:
                    self._process(item)
        except Exception as error:  # reported in the training thread, at a later step
            self._error = error
        finally:
            if isinstance(item, _Flush):
                item.done.set()

    def _process(self, batch: list[_Entry]) -> None:
        plan = self._plan
        # The CPU outputs of one module (one size) are summarised together.
        groups: dict[tuple[int, int, torch.dtype], list[int]] = {}
        for position, (_, module, values) in enumerate(batch):
            if isinstance(values, torch.Tensor):
                groups.setdefault((module, values.numel(), values.dtype), []).append(position)
        partials: dict[int, _Partial] = {}
        for positions in groups.values():
            size = batch[positions[0]][2].numel() * batch[positions[0]][2].element_size()  # type: ignore[union-attr]
            # Stacks that stay in the cache: each pass over them is then cheap.
            per_stack = max(1, _STACK_BYTES // size)
            for start in builtins.range(0, len(positions), per_stack):
                part = positions[start : start + per_stack]
                done = cpu_partials([batch[p][2] for p in part], plan)  # type: ignore[misc]
                partials.update(zip(part, done, strict=True))
        for position, (step, module, values) in enumerate(batch):
            if values is None:
                self._finish([step])
                continue
            partial = partials.get(position)
            if partial is None:
                assert isinstance(values, _DeviceResult)
                partial = values.partial(plan)
            key = (step, module)
            if key in self._open:
                self._open[key].merge(partial)
            else:
                self._open[key] = partial

    def _finish(self, steps: Sequence[int]) -> None:
        for step in steps:
            for module in builtins.range(len(self.modules)):
                partial = self._open.pop((step, module), None)
                if partial is not None:
                    self._chunk.add(step, self.modules[module], partial)
            self._buffered_steps += 1
            if (
                self._buffered_steps >= self._flush_steps
                or time.monotonic() - self._written_at >= self._flush_seconds
            ):
                self._write()

    def _write(self) -> None:
        chunk, self._chunk = self._chunk, _ChunkBuilder(self._plan.bins)
        self._buffered_steps = 0
        self._written_at = time.monotonic()
        if chunk.rows:
            self._writer.write(chunk.build())


class _ChunkBuilder:
    """Rows gathered column by column (cheaper than converting row objects at write time)."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.rows = 0
        self._columns: dict[str, list[Any]] = {name: [] for name in StepStatsChunk.scalar_columns()}
        self._counts: list[Any] = []

    def add(self, step: int, module: str, partial: _Partial) -> None:
        row = partial.row(step, module, self.bins)
        for column, value in zip(self._columns.values(), _scalars(row), strict=True):
            column.append(value)
        self._counts.append(row.counts)
        self.rows += 1

    def build(self) -> StepStatsChunk:
        return StepStatsChunk(
            counts=np.stack(self._counts).astype(np.int64, copy=False),
            **self._columns,
        )


def _scalars(row: StepStatsRow) -> tuple[Any, ...]:
    """A row's values in ``StepStatsChunk.scalar_columns()`` order."""
    return (
        row.step,
        row.module,
        row.count,
        row.mean,
        row.std,
        row.dead_fraction,
        row.underflow,
        row.overflow,
        row.nonfinite,
    )


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
