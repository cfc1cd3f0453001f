"""CheckpointWriter: the few lines a training loop adds to write a dyntools run folder.

writer = CheckpointWriter("runs/seed0", model, {"task": "my-task", "seed": 0})
writer.save_probe(x_val[:256], y_val[:256])
for epoch in range(epochs):
    ...
    writer.save(epoch, step=global_step, train_loss=loss, val_acc=acc)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dyntools.checkpoints.atomic import atomic_path, atomic_write_text
from dyntools.checkpoints.format import (
    CHECKPOINT_SUFFIX,
    EPOCH_FILE_RE,
    META_EPOCH,
    META_FORMAT,
    META_STEP,
    META_TIED,
    PROBE_FILE,
    RESERVED_META,
    RUN_JSON,
    RUN_SCHEMA_VERSION,
    STEP_FILE_RE,
    TMP_SUFFIX,
    epoch_filename,
)
from dyntools.checkpoints.probe import MAX_PROBE_SAMPLES, write_probe


def _dyntools_version() -> str:
    # Read lazily and without importing the package root's siblings: checkpoints is a leaf.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dyntools")
    except PackageNotFoundError:
        return "unknown"


def prepare_state_dict(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """Make a state dict safe to write with safetensors.

    safetensors refuses tensors that share memory (tied embeddings, views of one buffer) and
    non-contiguous tensors. Every name keeps its own contiguous CPU copy, so hook points see every
    module, and groups of names that were the same tensor are returned so they can be recorded.
    """
    tensors: dict[str, torch.Tensor] = {}
    by_identity: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state dict entry {name!r} is a {type(value).__name__}, not a tensor")
        tensor = value.detach()
        if tensor.numel() > 0 and tensor.device.type != "meta":
            identity = (
                tensor.untyped_storage().data_ptr(),
                int(tensor.storage_offset()),
                tuple(tensor.shape),
                tuple(tensor.stride()),
            )
            by_identity.setdefault(identity, []).append(name)
        # clone() gives every name its own storage; contiguous() fixes transposed views.
        tensors[name] = tensor.to("cpu").contiguous().clone()
    tied = [names for names in by_identity.values() if len(names) > 1]
    return tensors, tied


def _scalar_to_str(name: str, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"scalar {name!r} must be a single number, got shape {list(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"scalar {name!r} must be a number, got {type(value).__name__}")
    number = float(value)
    # repr round-trips a float exactly; nan and inf are kept, readers turn them back into floats.
    return repr(number) if math.isfinite(number) else str(number)


def _check_step(step: object) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")


class CheckpointWriter:
    """Writes one run folder: ``run.json``, ``epoch_NNNNN.safetensors`` (or, saved by step,
    ``step_NNNNNNN.safetensors``) and ``probe.safetensors``.

    ``model`` is an ``nn.Module`` (its ``state_dict()`` is saved at each ``save``) or a callable
    returning a state dict. ``config`` describes the run (task, model name and constructor
    arguments, optimizer, hyper-parameters, seed, dataset); it must be JSON-serializable.
    An existing run is never overwritten unless ``overwrite=True``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        model: torch.nn.Module,
        config: Mapping[str, Any],
        *,
        overwrite: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.model = model
        existing = self._existing_run_files()
        if existing and not overwrite:
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({existing[0].name}, ...): choose another "
                "folder, or pass overwrite=True to replace it"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for path in existing:
            path.unlink()
        self.config = self._build_run_json(config)
        atomic_write_text(self.run_dir / RUN_JSON, json.dumps(self.config, indent=2) + "\n")

    def _existing_run_files(self) -> list[Path]:
        if not self.run_dir.is_dir():
            if self.run_dir.exists():
                raise NotADirectoryError(f"{self.run_dir} exists and is not a folder")
            return []
        found = []
        for path in sorted(self.run_dir.iterdir()):
            name = path.name
            if (
                name in (RUN_JSON, PROBE_FILE)
                or EPOCH_FILE_RE.match(name)
                or STEP_FILE_RE.match(name)
                or (name.startswith(".") and name.endswith(TMP_SUFFIX))
            ):
                found.append(path)
        return found

    @staticmethod
    def _build_run_json(config: Mapping[str, Any]) -> dict[str, Any]:
        reserved = {"schema_version", "dyntools_version", "created"} & set(config)
        if reserved:
            raise ValueError(f"config must not set {sorted(reserved)}: the writer fills them in")
        run: dict[str, Any] = {
            "schema_version": RUN_SCHEMA_VERSION,
            "dyntools_version": _dyntools_version(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "task": "custom",
        }
        run.update(config)
        try:
            json.dumps(run, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"config must be JSON-serializable (finite numbers): {error}"
            ) from None
        return run

    def save(self, epoch: int, *, step: int | None = None, **scalars: float) -> Path:
        """Write ``epoch_NNNNN.safetensors`` with the model's current weights and the scalars.

        ``step`` defaults to ``epoch``. Scalars (``train_loss``, ``val_acc``, ...) go into the
        header metadata as strings, as safetensors requires.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__}")
        step = epoch if step is None else step
        _check_step(step)
        return self._write(self.run_dir / epoch_filename(epoch), step, epoch, scalars)

    def save_step(self, step: int, **scalars: float) -> Path:
        """Write ``step_NNNNNNN.safetensors``: for loops that save by optimizer step (several
        times per epoch, or without epochs). No epoch is recorded: a step never stands in for
        an epoch; a loop's own epoch count can go in as a scalar."""
        _check_step(step)
        return self._write(
            self.run_dir / f"step_{step:07d}{CHECKPOINT_SUFFIX}", step, None, scalars
        )

    def _write(
        self, path: Path, step: int, epoch: int | None, scalars: Mapping[str, float]
    ) -> Path:
        clash = RESERVED_META & set(scalars)
        if clash:
            raise ValueError(f"scalar names {sorted(clash)} are reserved")
        if path.exists():
            what = f"epoch {epoch}" if epoch is not None else f"step {step}"
            raise FileExistsError(f"{path} already exists: {what} was saved before")
        tensors, tied = prepare_state_dict(self.model.state_dict())
        if not tensors:
            raise ValueError("the model has no tensors to save")
        metadata = {META_FORMAT: "pt"}
        if epoch is not None:
            metadata[META_EPOCH] = str(epoch)
        metadata[META_STEP] = str(step)
        metadata.update({name: _scalar_to_str(name, value) for name, value in scalars.items()})
        if tied:
            metadata[META_TIED] = json.dumps(tied)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    def save_probe(self, x: torch.Tensor, y: torch.Tensor) -> Path:
        """Write ``probe.safetensors``: a fixed batch (at most 512) of inputs and labels."""
        return write_probe(self.run_dir / PROBE_FILE, x, y)


__all__ = ["CHECKPOINT_SUFFIX", "MAX_PROBE_SAMPLES", "CheckpointWriter", "prepare_state_dict"]
