"""What the Trainer and Lightning callbacks share: when to save, the scalars and run.json pieces
they hold, and the probe batch taken from a data loader, all written with ``CheckpointWriter``.

Neither library is imported here; the callbacks translate their trainer's events into calls of
``RunRecorder``.
"""

from __future__ import annotations

import enum
import itertools
import math
import numbers
import random
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

import numpy as np
import torch

from dyntools.checkpoints.format import RESERVED_META
from dyntools.checkpoints.probe import MAX_PROBE_SAMPLES
from dyntools.checkpoints.writer import CheckpointWriter
from dyntools.hooks import ActivationStats

LOG: Final = "log"
EveryNSteps = int | Literal["log"] | None

# Where a batch keeps its inputs and its labels, in the order they are looked for: transformers
# names (text, images, audio), then common names of plain PyTorch code.
INPUT_KEYS: Final = ("input_ids", "pixel_values", "input_values", "inputs", "x")
LABEL_KEYS: Final = ("labels", "label", "targets", "target", "y")


class ProbeWarning(UserWarning):
    """The callback could not take a probe batch; training goes on without one."""


class StepSchedule:
    """When a callback saves: ``None`` when its trainer saves, an int every N optimizer steps,
    ``"log"`` at steps 0, 1, 2, 4, 8, ... (dense early, where training changes fastest)."""

    def __init__(self, every_n_steps: EveryNSteps) -> None:
        if every_n_steps is not None and every_n_steps != LOG:
            if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int):
                raise TypeError(
                    f"every_n_steps must be None, a positive int or {LOG!r}, got {every_n_steps!r}"
                )
            if every_n_steps < 1:
                raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every = every_n_steps

    @property
    def follows_trainer(self) -> bool:
        return self.every is None

    def due(self, step: int) -> bool:
        """Whether step ``step`` is on this schedule (never, when the trainer decides)."""
        if self.every is None:
            return False
        if self.every == LOG:
            return step == 0 or step & (step - 1) == 0
        return step % int(self.every) == 0

    def describe(self) -> str:
        if self.every is None:
            return "the trainer's own save schedule, and step 0 (the initialization)"
        if self.every == LOG:
            return "log-spaced: steps 0, 1, 2, 4, 8, ... and the last step"
        return f"every {self.every} optimizer steps from step 0, and the last step"


class RunRecorder:
    """One run folder being written while a trainer trains.

    The callbacks call ``start`` when training starts (run.json and the initialization), then
    ``save`` when their trainer saves, or ``mark`` after each optimizer step and ``flush`` at
    the next event: a step marked is written once the trainer has logged and evaluated at that
    step (weights do not change in between), so its checkpoint carries that step's scalars.
    """

    def __init__(
        self,
        run_dir: str | Path,
        every_n_steps: EveryNSteps,
        *,
        config: Mapping[str, Any] | None,
        probe: tuple[torch.Tensor, torch.Tensor] | None,
        probe_samples: int,
        overwrite: bool,
        step_stats: bool | int = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        if isinstance(step_stats, bool):
            self.stats_every = 1 if step_stats else 0
        elif isinstance(step_stats, int) and step_stats >= 1:
            self.stats_every = step_stats
        else:
            raise ValueError(
                f"step_stats takes True, False or every N steps (N >= 1), got {step_stats!r}"
            )
        self.stats: ActivationStats | None = None
        self.schedule = StepSchedule(every_n_steps)
        self.extra = dict(config or {})
        if not 0 < probe_samples <= MAX_PROBE_SAMPLES:
            raise ValueError(f"probe_samples must be 1..{MAX_PROBE_SAMPLES}, got {probe_samples}")
        self.probe_samples = probe_samples
        if probe is not None:
            x, y = probe
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError("probe must be a pair of tensors (x, y)")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"probe x has {x.shape[0]} samples but y has {y.shape[0]}")
            probe = (x[:probe_samples], y[:probe_samples])
        self.user_probe = probe
        self.overwrite = overwrite
        self.writer: CheckpointWriter | None = None
        self.saved: list[int] = []
        self.pending: int | None = None
        self.has_probe = False
        self._probe_tried: set[str] = set()

    def start(
        self,
        model: torch.nn.Module,
        run_json: Mapping[str, Any],
        step: int,
        scalars: Mapping[str, object],
    ) -> None:
        """Write run.json (the user's ``config`` entries win) and the checkpoint at ``step``,
        the weights training starts from."""
        config = {**run_json, **self.extra}
        self.writer = CheckpointWriter(self.run_dir, model, config, overwrite=self.overwrite)
        self.saved, self.pending, self.has_probe = [], None, False
        self._probe_tried.clear()
        if self.stats_every:
            if self.stats is not None:
                self.stats.close()
            # Per-step activation statistics of the training passes (not evaluation ones).
            self.stats = ActivationStats(
                model, self.run_dir, every=self.stats_every, start_step=step
            )
        if self.user_probe is not None:
            self.writer.save_probe(*self.user_probe)
            self.has_probe = True
        self.save(step, scalars)

    def save(self, step: int, scalars: Mapping[str, object]) -> Path | None:
        """Write the model's weights as the checkpoint of ``step`` (once per step)."""
        if self.writer is None or step in self.saved:
            return None
        path = self.writer.save_step(step, **numeric_scalars(scalars))
        self.saved.append(step)
        if self.pending == step:
            self.pending = None
        return path

    def step_begins(self, step: int) -> None:
        """Before the forward passes of optimizer step ``step`` (its per-step statistics)."""
        if self.stats is not None:
            self.stats.set_step(step)

    def mark(self, step: int) -> None:
        """After an optimizer step: remember ``step`` if the schedule wants it."""
        if self.writer is not None and self.schedule.due(step) and step not in self.saved:
            self.pending = step

    def flush(self, scalars: Mapping[str, object]) -> None:
        """Write the marked step, if any, with the scalars known now."""
        if self.pending is not None:
            self.save(self.pending, scalars)

    def finish(self, step: int, scalars: Mapping[str, object]) -> None:
        """At the end of training: the marked step, and the last step when the callback keeps
        its own schedule (so the trajectory ends where training ended)."""
        self.flush(scalars)
        if not self.schedule.follows_trainer:
            self.save(step, scalars)
        if self.stats is not None:
            self.stats.close()
            self.stats = None

    def provenance(
        self, callback: object, scalars_source: str, library: ModuleType
    ) -> dict[str, Any]:
        """The run.json entries every callback writes: its save schedule, where the scalars
        come from, and which callback and library versions wrote the run."""
        return {
            "checkpoint_schedule": self.schedule.describe(),
            "scalars_source": scalars_source,
            "written_by": {
                "callback": class_reference(callback),
                f"{library.__name__}_version": library.__version__,
                "torch_version": torch.__version__,
            },
        }

    def take_probe(self, loader: object, source: str) -> None:
        """Save the probe batch from ``loader`` unless there is one (one try per source)."""
        if self.writer is None or self.has_probe or loader is None or source in self._probe_tried:
            return
        self._probe_tried.add(source)
        try:
            x, y = probe_from_loader(loader, self.probe_samples)
            self.writer.save_probe(x, y)
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as error:
            warnings.warn(
                f"dyntools: no probe batch from the {source} data ({error}); activation metrics "
                "need one: pass probe=(x, y) to DyntoolsCallback, or make one later with "
                "`dyntools probe FOLDER --from FILE`",
                ProbeWarning,
                stacklevel=2,
            )
            return
        self.has_probe = True


def probe_from_loader(loader: object, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` samples of a data loader's dataset, collated by its own collate
    function, as inputs and labels.

    The dataset is indexed rather than the loader iterated: iterating a trainer's loader
    would advance its sampler, and accelerate's loaders register themselves with the training
    loop's gradient state while they are being iterated. Random states are restored, so that a
    run with the callback trains exactly as one without (a collator may draw random masks).
    """
    dataset = getattr(loader, "dataset", None)
    collate = getattr(loader, "collate_fn", None)
    if dataset is None or not callable(collate):
        raise TypeError(f"a {type(loader).__name__} is not a torch DataLoader")
    with _random_state_kept():
        if isinstance(dataset, torch.utils.data.IterableDataset):
            samples = list(itertools.islice(iter(dataset), limit))
        else:
            samples = [dataset[i] for i in range(min(len(dataset), limit))]
        if not samples:
            raise ValueError("its dataset is empty")
        batch = collate(samples)
    return inputs_and_labels(batch, limit)


def inputs_and_labels(batch: object, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``y`` of a collated batch: ``input_ids`` (or pixel values, ...) and ``labels``
    of a dict, or the first two tensors of a tuple."""
    x: object = None
    y: object = None
    if isinstance(batch, Mapping):
        x = next((batch[k] for k in INPUT_KEYS if k in batch), None)
        y = next((batch[k] for k in LABEL_KEYS if k in batch), None)
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(
                f"a batch with keys {sorted(map(str, batch))} needs an input tensor (one of "
                f"{', '.join(INPUT_KEYS)}) and a label tensor (one of {', '.join(LABEL_KEYS)})"
            )
    elif isinstance(batch, tuple | list) and len(batch) >= 2:
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(
                f"a batch (x, y, ...) needs tensors, got {type(x).__name__} and {type(y).__name__}"
            )
    else:
        raise ValueError(
            f"cannot tell inputs from labels in a batch of type {type(batch).__name__}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"the batch has {x.shape[0]} inputs but {y.shape[0]} labels")
    return x[:limit], y[:limit]


@contextmanager
def _random_state_kept() -> Iterator[None]:
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    # devices=[]: only the CPU generator; collators draw their masks there.
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def numeric_scalars(values: Mapping[str, object]) -> dict[str, float]:
    """The numbers of a trainer's logs (floats, ints, one-element tensors), for a checkpoint's
    header. The keys the format reserves are left out: the writer records step and epoch."""
    scalars: dict[str, float] = {}
    for name, value in values.items():
        if str(name) in RESERVED_META:
            continue
        number = _number(value)
        if number is not None:
            scalars[str(name)] = number
    return scalars


def _number(value: object) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            return None
        return float(value.detach().cpu().item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def jsonable(value: object) -> Any:
    """A JSON-safe copy of a configuration value: containers kept, numbers and strings as they
    are, non-finite floats and other objects (dtypes, enums, paths, classes) as text."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return jsonable(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return jsonable(float(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def is_plain_json(value: object) -> bool:
    """Whether ``value`` survives JSON as it is (tuples become lists): model arguments are
    written only then, so that rebuilding the model gets the arguments it was built with."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_plain_json(v) for v in value)
    return False


def class_reference(obj: object) -> str:
    """``package.module:QualifiedName`` of an object's class: what ``--factory`` takes."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def optimizer_description(optimizer: object) -> dict[str, Any] | None:
    """run.json's ``optimizer``: its class and the hyper-parameters of its first parameter
    group, plus every group when there are several (a Trainer keeps biases and norms apart,
    without weight decay). Wrappers (accelerate's ``AcceleratedOptimizer``) are looked through.
    """
    inner = optimizer
    while isinstance(getattr(inner, "optimizer", None), torch.optim.Optimizer):
        inner = inner.optimizer  # type: ignore[attr-defined]
    if not isinstance(inner, torch.optim.Optimizer):
        return None
    groups = [
        {
            **{k: jsonable(v) for k, v in group.items() if k != "params"},
            "parameters": len(group["params"]),
        }
        for group in inner.param_groups
    ]
    description: dict[str, Any] = {"name": type(inner).__name__, "class": class_reference(inner)}
    if groups:
        description.update({k: v for k, v in groups[0].items() if k != "parameters"})
    if len(groups) > 1:
        description["param_groups"] = groups
    return description
