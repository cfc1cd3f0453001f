"""The records every layout reader produces: runs, checkpoint references, tensors, problems.

They are plain frozen data, so the pipeline, the store and the app can pass them around without
knowing which layout a run came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from dyntools.text import path_text, printable

# dtype names follow torch without the "torch." prefix.
FLOAT_DTYPES: Final = frozenset(
    {
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    }
)

# How a checkpoint's tensors are stored; open_checkpoint keeps one reader per format.
FORMAT_SAFETENSORS: Final = "safetensors"
FORMAT_SHARDED: Final = "safetensors-sharded"
FORMAT_TORCH: Final = "torch"


# The largest step a checkpoint may have: the store keeps steps as signed 64-bit integers.
MAX_STEP: Final = 2**63 - 1


class Axis(StrEnum):
    """The time axis a run's checkpoints are placed on: the optimizer step always, the epoch
    where the run's source states one for every checkpoint."""

    STEP = "step"
    EPOCH = "epoch"


# What a user may ask for: an axis, or ``auto`` (the epoch where every checkpoint states one).
AUTO_AXIS: Final = "auto"
AXIS_CHOICES: Final = (AUTO_AXIS, Axis.STEP.value, Axis.EPOCH.value)


def task_from(config: Mapping[str, Any], layout: str) -> str:
    """The task a run's configuration names; ``(layout)`` when it names none."""
    task = config.get("task")
    return task if isinstance(task, str) and task else f"({layout})"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file or folder: what, and what the user can do about it."""

    path: Path
    what: str
    hint: str

    def message(self) -> str:
        """One line: ``PATH: what; hint``, safe to print (names are escaped)."""
        return printable(f"{path_text(self.path)}: {self.what}; {self.hint}")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: names the file, what is wrong and what to do."""

    def __init__(self, path: Path, what: str, hint: str) -> None:
        super().__init__(printable(f"{path_text(path)}: {what}; {hint}"))
        self.path = path
        self.what = what
        self.hint = hint

    def problem(self) -> Problem:
        return Problem(self.path, self.what, self.hint)


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one tensor, read from a header without reading its data."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def is_float(self) -> bool:
        """Whether the tensor is floating point (only those are fed to metrics)."""
        return self.dtype in FLOAT_DTYPES

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class Fingerprint:
    """Cheap identity of a checkpoint's files, to tell whether it changed since it was read.

    ``size`` and ``mtime_ns`` are summed and maxed over the files; ``digest`` is a SHA-256 of the
    safetensors header bytes (which hold every tensor's offsets and the metadata) or of the first
    64 KiB of a pickled file.
    """

    size: int
    mtime_ns: int
    digest: str


@dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint of a run: where its tensors are and what was logged with it.

    ``step`` orders the checkpoints of a run: the global step where the layout records one,
    otherwise the epoch (or the number in the file name). ``epoch`` is the training epoch as the
    source states it, fractional where it is (Hugging Face Trainer: 0.5), None where it states
    none; never a step. ``files`` is one file, or every shard.
    ``container_key`` names the entry of a pickled dict that holds the state dict (``state_dict``
    for Lightning); ``strip_prefix`` is removed from every tensor name (``net.`` for a
    LightningModule attribute). ``tensors`` are the names as the user sees them (prefix removed).
    """

    step: int
    epoch: float | None
    files: tuple[Path, ...]
    format: str
    tensors: tuple[TensorInfo, ...]
    fingerprint: Fingerprint
    # Left out of the hash (a dict is not hashable) so refs can key caches; still compared.
    scalars: Mapping[str, float] = field(default_factory=dict, hash=False)
    container_key: str | None = None
    strip_prefix: str = ""

    @property
    def path(self) -> Path:
        """The file (or, for shards, the folder) that stands for this checkpoint in messages."""
        return self.files[0] if len(self.files) == 1 else self.files[0].parent


@dataclass(frozen=True)
class Run:
    """A training run found below the analysed folder, in any supported layout.

    ``run_id`` is the run folder's path relative to the analysed folder, with ``/`` separators
    (``.`` when the folder itself is the run); it is stable as long as the folder is not moved
    within the analysed tree. ``config`` is ``run.json`` for dyntools runs, ``config.json`` of
    the latest checkpoint for Hugging Face runs, and empty otherwise.
    """

    run_id: str
    path: Path
    layout: str
    checkpoints: tuple[CheckpointRef, ...]
    scalar_names: tuple[str, ...]
    problems: tuple[Problem, ...]
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    probe: Path | None = None

    @property
    def task(self) -> str:
        """What the run trained: its configuration's ``task`` (run.json; a hub repository
        without its ``-seedN``), else ``(layout)``: runs of one task are fitted together."""
        return task_from(self.config, self.layout)

    @property
    def first_step(self) -> int | None:
        return self.checkpoints[0].step if self.checkpoints else None

    @property
    def last_step(self) -> int | None:
        return self.checkpoints[-1].step if self.checkpoints else None


@dataclass(frozen=True)
class Discovery:
    """Everything found below one folder: the runs, and problems that belong to no run."""

    root: Path
    runs: tuple[Run, ...]
    problems: tuple[Problem, ...]

    def run(self, run_id: str) -> Run:
        """The run with this id; an unknown id is a LookupError listing the known ones."""
        for run in self.runs:
            if run.run_id == run_id:
                return run
        known = ", ".join(r.run_id for r in self.runs) or "none"
        raise LookupError(f"no run {run_id!r} in {self.root}; runs found: {known}")

    def all_problems(self) -> tuple[Problem, ...]:
        """The folder's problems followed by every run's."""
        return self.problems + tuple(p for run in self.runs for p in run.problems)
