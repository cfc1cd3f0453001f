"""``probe.safetensors``: the fixed batch of inputs ``x`` and labels ``y`` a run carries for
activation metrics (``CheckpointWriter.save_probe`` and ``dyntools probe`` write it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dyntools.checkpoints.atomic import atomic_path
from dyntools.checkpoints.format import META_FORMAT
from dyntools.checkpoints.records import CheckpointError
from dyntools.checkpoints.safetensors_header import read_header

MAX_PROBE_SAMPLES = 512


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


def write_probe(path: Path, x: torch.Tensor, y: torch.Tensor) -> Path:
    """Write a probe batch (1..512 samples of inputs and labels) to ``path``, atomically."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"probe x has {x.shape[0]} samples but y has {y.shape[0]}")
    if not 0 < x.shape[0] <= MAX_PROBE_SAMPLES:
        raise ValueError(
            f"a probe batch holds 1..{MAX_PROBE_SAMPLES} samples, got {x.shape[0]}: "
            f"pass x[:{MAX_PROBE_SAMPLES}], y[:{MAX_PROBE_SAMPLES}]"
        )
    tensors = {
        "x": x.detach().to("cpu").contiguous().clone(),
        "y": y.detach().to("cpu").contiguous().clone(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_FORMAT: "pt"})
    read_probe.cache_clear()  # a probe written again must be read again
    return path
