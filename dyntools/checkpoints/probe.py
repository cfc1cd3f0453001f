"""Reading ``probe.safetensors``: the fixed batch of inputs ``x`` and labels ``y`` a run carries
for activation metrics (``CheckpointWriter.save_probe`` writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dyntools.checkpoints.records import CheckpointError
from dyntools.checkpoints.safetensors_header import read_header


@dataclass(frozen=True)
class Probe:
    """The fixed probe batch of a run: inputs ``x`` (m, ...) and labels ``y`` (m, ...)."""

    x: torch.Tensor
    y: torch.Tensor


@lru_cache(maxsize=8)
def read_probe(path: Path) -> Probe:
    """The probe batch at ``path`` (cached: every checkpoint of a run reads the same file).

    A damaged file or one without ``x`` and ``y`` raises CheckpointError naming it.
    """
    read_header(path)  # a regular, well-formed safetensors file (raises CheckpointError)
    try:
        tensors = load_file(str(path))
    except SafetensorError as error:
        raise CheckpointError(
            path, f"cannot be read as safetensors ({error})", "write it again with save_probe"
        ) from None
    missing = sorted({"x", "y"} - set(tensors))
    if missing:
        raise CheckpointError(
            path,
            f"lacks tensor(s) {missing}",
            "a probe needs 'x' and 'y': write it with save_probe",
        )
    if tensors["x"].shape[0] != tensors["y"].shape[0]:
        raise CheckpointError(
            path,
            f"x has {tensors['x'].shape[0]} samples but y has {tensors['y'].shape[0]}",
            "write it again with save_probe",
        )
    return Probe(tensors["x"], tensors["y"])
