"""``probe.safetensors``: the fixed batch of inputs ``x`` and labels ``y`` a run carries for
activation metrics (``CheckpointWriter.save_probe`` and ``dyntools probe`` write it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dyntools.checkpoints.atomic import atomic_path
from dyntools.checkpoints.files import open_regular
from dyntools.checkpoints.format import META_FORMAT
from dyntools.checkpoints.records import CheckpointError
from dyntools.checkpoints.safetensors_header import read_header

MAX_PROBE_SAMPLES = 512


@dataclass(frozen=True)
class Probe:
    """The fixed probe batch of a run: inputs ``x`` (m, ...) and labels ``y`` (m, ...)."""

    x: torch.Tensor
    y: torch.Tensor


# What to do about a damaged probe file.
_REWRITE = "write it again with save_probe, or `dyntools probe FOLDER --from FILE --force`"


def _checked(path: Path) -> None:
    """Raise CheckpointError, with the advice for a probe, unless ``path`` is a regular,
    well-formed safetensors file."""
    try:
        read_header(path)
    except CheckpointError as error:
        raise CheckpointError(path, error.what, _REWRITE) from None


def read_probe(path: Path) -> Probe:
    """The probe batch at ``path`` (cached per version of the file: every checkpoint of a run
    reads the same one, and one written again, by any process, is read again).

    A damaged file or one without ``x`` and ``y`` raises CheckpointError naming it.
    """
    info = path.stat()
    return _read(path, info.st_ino, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=8)
def _read(path: Path, inode: int, size: int, mtime_ns: int) -> Probe:
    _checked(path)
    try:
        tensors = load_file(str(path))
    except SafetensorError as error:
        raise CheckpointError(path, f"cannot be read as safetensors ({error})", _REWRITE) from None
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
            _REWRITE,
        )
    return Probe(tensors["x"], tensors["y"])


def probe_digest(path: Path) -> str:
    """A digest of the probe file's bytes (regular files only: it is checked as a safetensors
    file first), which the activation values computed on it record; hashed once per version
    of the file in a process (``dyntools watch`` plans again and again)."""
    info = path.stat()
    return _digest(path, info.st_ino, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: Path, inode: int, size: int, mtime_ns: int) -> str:
    _checked(path)
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


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
    return path
