"""Shared steps of every layout reader: numbers from file names, checkpoint references from
files, and turning a list of candidate checkpoints into a consistent, ordered run."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from dyntools.checkpoints.fingerprint import combine, head_digest
from dyntools.checkpoints.records import (
    FORMAT_SAFETENSORS,
    FORMAT_SHARDED,
    FORMAT_TORCH,
    MAX_STEP,
    CheckpointError,
    CheckpointRef,
    Problem,
    Run,
    TensorInfo,
)
from dyntools.checkpoints.safetensors_header import Header, read_header
from dyntools.checkpoints.torch_pickle import (
    load_pickle,
    locate_state_dict,
    numeric_entries,
    state_dict_of,
)

_STEP_RE: Final = re.compile(r"step[=_-]?(\d+)", re.IGNORECASE)
_EPOCH_RE: Final = re.compile(r"epoch[=_-]?(\d+)", re.IGNORECASE)
_NUMBER_RE: Final = re.compile(r"(\d+)")
# Hugging Face shard names: model-00001-of-00003.safetensors
SHARD_RE: Final = re.compile(r"-\d+-of-\d+$")


@dataclass(frozen=True)
class NameNumbers:
    """The step and epoch a file name carries (``epoch=3-step=120``, ``ckpt_0040``)."""

    step: int
    epoch: float | None


def numbers_in_name(stem: str) -> NameNumbers | None:
    """``step`` and ``epoch`` from a file name; a bare number counts as the step.

    Only an epoch (``epoch_00003``) orders by the epoch. No number at all gives None.
    """
    step = _STEP_RE.search(stem)
    epoch = _EPOCH_RE.search(stem)
    epoch_number = int(epoch.group(1)) if epoch else None
    if step:
        return NameNumbers(int(step.group(1)), epoch_number)
    if epoch_number is not None:
        # No step recorded: the epoch orders the checkpoints (and is their step).
        return NameNumbers(epoch_number, epoch_number)
    numbers = _NUMBER_RE.findall(stem)
    return NameNumbers(int(numbers[-1]), None) if numbers else None


def problem_for(path: Path, error: Exception) -> Problem:
    """The Problem record for an error met while reading ``path`` during discovery."""
    if isinstance(error, CheckpointError):
        return error.problem()
    if isinstance(error, FileNotFoundError):
        return Problem(path, "disappeared while the folder was scanned", "scan the folder again")
    if isinstance(error, PermissionError):
        return Problem(
            path, "permission denied", f"make it readable (chmod a+r '{path}') or run as its owner"
        )
    if isinstance(error, OSError):
        return Problem(
            path, f"cannot be read ({error.strerror or error})", "check the disk and the file"
        )
    return Problem(
        path, f"cannot be read ({type(error).__name__}: {error})", "delete or re-save it"
    )


def safetensors_ref(
    files: Sequence[Path],
    *,
    step: int,
    epoch: float | None,
    scalars: Mapping[str, float] | None = None,
    headers: Sequence[Header] | None = None,
) -> CheckpointRef:
    """A reference to a safetensors checkpoint (one file or shards); reads only headers."""
    headers = list(headers) if headers is not None else [read_header(path) for path in files]
    tensors: list[TensorInfo] = [info for header in headers for info in header.tensors]
    return CheckpointRef(
        step=step,
        epoch=epoch,
        files=tuple(files),
        format=FORMAT_SAFETENSORS if len(files) == 1 else FORMAT_SHARDED,
        tensors=tuple(tensors),
        fingerprint=combine(files, [header.digest for header in headers]),
        scalars=dict(scalars or {}),
    )


PrefixRule = Callable[[Sequence[str]], str]


def torch_ref(
    path: Path,
    *,
    step: int | None,
    epoch: float | None,
    scalars: Mapping[str, float] | None = None,
    prefix_rule: PrefixRule | None = None,
) -> tuple[CheckpointRef, dict[str, float]]:
    """A reference to a pickled checkpoint, and the numbers saved at its top level.

    The file is memory-mapped to list its tensors; their data are not read. A ``global_step`` or
    ``step`` saved in the file wins over ``step`` (from the file name), and a saved ``epoch``
    over ``epoch``; with neither, the saved epoch orders the checkpoint.
    """
    loaded: Any = load_pickle(path)
    key = locate_state_dict(path, loaded)
    state = state_dict_of(loaded, key)
    numbers = numeric_entries(loaded)
    saved_step = next((numbers[k] for k in ("global_step", "step") if k in numbers), None)
    for what, value in (("step", saved_step), ("epoch", numbers.get("epoch"))):
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_STEP):
            raise CheckpointError(
                path,
                f"holds a saved {what} of {value}, which no checkpoint can have",
                "re-save it with its real step and epoch",
            )
    if "epoch" in numbers:
        epoch = numbers["epoch"]
    if saved_step is not None:
        step = int(saved_step)
    elif step is None:
        if epoch is None:
            raise CheckpointError(
                path,
                "neither its name nor its contents give a step or epoch",
                "rename it to NAME_<step>.pt so that it can be ordered",
            )
        step = int(epoch)
    names = list(state)
    prefix = prefix_rule(names) if prefix_rule else ""
    tensors = tuple(
        TensorInfo(
            name=name[len(prefix) :],
            shape=tuple(tensor.shape),
            dtype=str(tensor.dtype).removeprefix("torch."),
        )
        for name, tensor in state.items()
    )
    ref = CheckpointRef(
        step=step,
        epoch=epoch,
        files=(path,),
        format=FORMAT_TORCH,
        tensors=tensors,
        fingerprint=combine([path], [head_digest(path)]),
        scalars=dict(scalars or {}),
        container_key=key,
        strip_prefix=prefix,
    )
    return ref, numbers


def _signature(ref: CheckpointRef) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((info.name, info.shape) for info in ref.tensors))


def _difference(ref: CheckpointRef, reference: CheckpointRef) -> str:
    mine = {info.name: info.shape for info in ref.tensors}
    theirs = {info.name: info.shape for info in reference.tensors}
    for name, shape in theirs.items():
        if name not in mine:
            return f"tensor {name!r} is missing"
        if mine[name] != shape:
            return f"tensor {name!r} has shape {list(mine[name])}, the others {list(shape)}"
    extra = sorted(set(mine) - set(theirs))
    return f"it has extra tensors ({', '.join(extra[:3])})"


def assemble_run(
    *,
    run_id: str,
    path: Path,
    layout: str,
    candidates: Iterable[CheckpointRef],
    problems: Iterable[Problem],
    config: Mapping[str, Any] | None = None,
    probe: Path | None = None,
) -> Run:
    """Order the checkpoints by step, drop steps that cannot be stored, duplicate steps and odd
    shapes (each reported)."""
    found = list(problems)
    storable = []
    for ref in candidates:
        if 0 <= ref.step <= MAX_STEP:
            storable.append(ref)
            continue
        found.append(
            Problem(
                ref.path,
                f"its step {ref.step} is beyond what a checkpoint can have (0 to 2^63 - 1): "
                "not read",
                "rename it with its real step",
            )
        )
    ordered = sorted(storable, key=lambda ref: (ref.step, str(ref.path)))
    unique: list[CheckpointRef] = []
    for ref in ordered:
        if unique and unique[-1].step == ref.step:
            found.append(
                Problem(
                    ref.path,
                    f"step {ref.step} also belongs to {unique[-1].path.name}; this one is not read",
                    "delete or rename one of the two",
                )
            )
            continue
        unique.append(ref)
    kept = _consistent(unique, found)
    scalar_names = sorted({name for ref in kept for name in ref.scalars})
    return Run(
        run_id=run_id,
        path=path,
        layout=layout,
        checkpoints=tuple(kept),
        scalar_names=tuple(scalar_names),
        problems=tuple(found),
        config=dict(config or {}),
        probe=probe,
    )


def _consistent(refs: list[CheckpointRef], found: list[Problem]) -> list[CheckpointRef]:
    # The tensor layout shared by most checkpoints wins; ties go to the earliest checkpoint.
    if len(refs) < 2:
        return refs
    counts = Counter(_signature(ref) for ref in refs)
    best = max(counts.values())
    majority = next(sig for sig in map(_signature, refs) if counts[sig] == best)
    reference = next(ref for ref in refs if _signature(ref) == majority)
    kept = []
    for ref in refs:
        if _signature(ref) == majority:
            kept.append(ref)
            continue
        found.append(
            Problem(
                ref.path,
                f"its tensors differ from the rest of its run ({_difference(ref, reference)}); "
                "it is not read",
                "move it out of the run folder; a run whose model changed shape belongs in two folders",
            )
        )
    return kept


def with_scalars(ref: CheckpointRef, scalars: Mapping[str, float]) -> CheckpointRef:
    """A copy of ``ref`` with ``scalars`` added to its own."""
    return replace(ref, scalars={**ref.scalars, **scalars})
