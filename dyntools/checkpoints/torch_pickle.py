"""Load pickled torch checkpoints (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) safely.

Only ``torch.load(weights_only=True)`` is ever used: tensors, numbers, strings and plain
containers load, anything that would run code while unpickling is refused. Files in torch's zip
format are memory-mapped, so reading one tensor does not read the others.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dyntools.checkpoints.files import open_regular
from dyntools.checkpoints.records import CheckpointError

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that need it (anything they are given came from torch.load,
# so it is imported by then): discovering a folder of safetensors files, as the app's first page
# does, then never pays torch's import (about 1.3 s).

# Entries of a saved dict that commonly hold the model's state dict, tried in this order
# (Lightning: state_dict; plain loops: model_state_dict / model; DeepSpeed-style: module).
STATE_DICT_KEYS: Final = ("state_dict", "model_state_dict", "model", "module", "net")

_GLOBAL_RE: Final = re.compile(r"GLOBAL ([\w.]+)")

_RESAVE_HINT: Final = (
    "dyntools loads only tensors and plain containers (torch.load(weights_only=True)), never "
    "arbitrary pickled objects, because unpickling can run code: re-save it with "
    "torch.save(model.state_dict(), path) or convert it to safetensors"
)


def load_pickle(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, memory-mapped when the file format allows.

    Checked first, without loading: a regular, non-empty file; not gzip-compressed; a zip
    archive only with stored (uncompressed) entries, as ``torch.save`` writes them, so that a
    small file cannot inflate to gigabytes in memory.
    """
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        magic = handle.read(4)
    if size == 0:
        raise CheckpointError(path, "empty file (0 bytes)", "delete it or save it again")
    if magic[:2] == GZIP_MAGIC:
        raise CheckpointError(
            path, "is gzip-compressed, not a torch.save file", "decompress it (gunzip) first"
        )
    # Only torch's zip format can be memory-mapped; the legacy format loads whole.
    mmap = magic == ZIP_MAGIC and zipfile.is_zipfile(path)
    if mmap:
        _check_archive(path, size)
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        found = _GLOBAL_RE.search(str(error))
        holds = f" (it holds {found.group(1)})" if found else ""
        raise CheckpointError(
            path, f"refused: loading it needs full unpickling{holds}", _RESAVE_HINT
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            path,
            f"not a readable torch file ({type(error).__name__}: {first_line[:160]})",
            "it is truncated or corrupt: delete it or save it again",
        ) from None


GZIP_MAGIC: Final = b"\x1f\x8b"
ZIP_MAGIC: Final = b"PK\x03\x04"


def _check_archive(path: Path, size: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            path, f"is a damaged zip archive ({error})", "delete it or save it again"
        ) from None
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    declared = sum(m.file_size for m in members)
    if packed or declared > size:
        raise CheckpointError(
            path,
            "is a compressed zip archive"
            + (f" ({packed[0]!r} is compressed)" if packed else "")
            + f" declaring {declared / 2**20:.0f} MiB in a {size / 2**20:.1f} MiB file; "
            "torch.save stores entries uncompressed",
            "this is not a torch.save file: not loaded",
        )


def is_state_dict(value: object) -> bool:
    """A non-empty mapping of string names to tensors."""
    import torch

    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def locate_state_dict(path: Path, loaded: Any, container_key: str | None = None) -> str | None:
    """Which entry of ``loaded`` holds the state dict (None: ``loaded`` itself is one)."""
    if container_key is not None:
        if isinstance(loaded, Mapping) and is_state_dict(loaded.get(container_key)):
            return container_key
        raise CheckpointError(
            path,
            f"no state dict under {container_key!r} any more",
            "the file changed since the folder was scanned: scan it again",
        )
    if isinstance(loaded, Mapping):
        if is_state_dict(loaded):
            return None
        for key in STATE_DICT_KEYS:
            if is_state_dict(loaded.get(key)):
                return key
    kind = type(loaded).__name__
    keys = f" with keys {sorted(map(repr, loaded))[:8]}" if isinstance(loaded, Mapping) else ""
    raise CheckpointError(
        path,
        f"holds a {kind}{keys}, not a state dict",
        "save torch.save(model.state_dict(), path), or a dict with the state dict under one of "
        + ", ".join(STATE_DICT_KEYS),
    )


def state_dict_of(loaded: Any, container_key: str | None) -> Mapping[str, torch.Tensor]:
    """The state dict located by ``locate_state_dict``."""
    value = loaded if container_key is None else loaded[container_key]
    return value  # type: ignore[no-any-return]


def numeric_entries(loaded: Any) -> dict[str, float]:
    """Top-level numbers saved beside the state dict (``epoch``, ``step``, ``loss``...)."""
    if not isinstance(loaded, Mapping):
        return {}
    import torch

    numbers: dict[str, float] = {}
    for key, value in loaded.items():
        if isinstance(value, bool) or not isinstance(key, str):
            continue
        if isinstance(value, int | float):
            numbers[key] = float(value)
        elif isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
            numbers[key] = float(value.item())
    return numbers
