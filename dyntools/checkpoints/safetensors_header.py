"""Read and check a safetensors header without reading any tensor data.

The header is 8 bytes (little-endian length N) followed by N bytes of JSON. Parsing it ourselves
gives each kind of damage its own message (empty, truncated, garbage, length past the end of the
file) and the exact header bytes for the fingerprint. The rules safetensors itself enforces are
checked here, so that a file listed as readable is one the reader will read: a JSON object of
tensors with a known dtype (a string), a shape of non-negative integers, offsets that cover the
data exactly (no gap, no overlap), names given once, and metadata of strings. A file whose data
is mostly holes (a sparse file declaring more than it holds) is refused before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dyntools.checkpoints.files import open_regular
from dyntools.checkpoints.records import CheckpointError, TensorInfo

# safetensors refuses headers above 100 MB; a larger length is garbage, not a real header.
MAX_HEADER_BYTES: Final = 100_000_000

# safetensors dtype code -> (torch dtype name, bits per element)
DTYPES: Final[dict[str, tuple[str, int]]] = {
    "BOOL": ("bool", 8),
    "U8": ("uint8", 8),
    "I8": ("int8", 8),
    "U16": ("uint16", 16),
    "I16": ("int16", 16),
    "U32": ("uint32", 32),
    "I32": ("int32", 32),
    "U64": ("uint64", 64),
    "I64": ("int64", 64),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "F32": ("float32", 32),
    "F64": ("float64", 64),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "C64": ("complex64", 64),
}


# A damaged header is a CheckpointError like any other unreadable checkpoint.
HeaderError = CheckpointError


@dataclass(frozen=True)
class Header:
    """The parsed header of one safetensors file."""

    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    digest: str


_RESAVE = "the write was probably interrupted: delete the file or save that checkpoint again"


def read_header(path: Path) -> Header:
    """Parse ``path``'s header; damage raises HeaderError, I/O trouble raises OSError."""
    with open_regular(path) as handle:
        file_size = _file_size(handle.fileno())
        _refuse_sparse(path, handle.fileno(), file_size)
        if file_size == 0:
            raise HeaderError(path, "empty file (0 bytes)", _RESAVE)
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise HeaderError(
                path, f"only {file_size} bytes, too short for a safetensors header", _RESAVE
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or length + 8 > file_size:
            raise HeaderError(
                path,
                f"the header claims {length} bytes but the file has {file_size} bytes",
                "the file is truncated or is not a safetensors file: " + _RESAVE,
            )
        raw = handle.read(length)
    return _parse(path, raw, file_size - 8 - length)


def _file_size(fd: int) -> int:
    return os.fstat(fd).st_size


# A real checkpoint's blocks hold its bytes; a file whose allocated blocks cover less than this
# share of its size (past the first MiB) is a sparse file declaring data it does not hold.
_MIN_ALLOCATED_SHARE: Final = 0.01


def _refuse_sparse(path: Path, fd: int, size: int) -> None:
    allocated = os.fstat(fd).st_blocks * 512
    if size > 2**20 and allocated < _MIN_ALLOCATED_SHARE * size:
        raise HeaderError(
            path,
            f"declares {size / 2**30:.1f} GiB but holds {allocated / 2**20:.1f} MiB on disk (a "
            "sparse file): not read",
            "this is not a real checkpoint; copy the real one back",
        )


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise _Duplicate(twice)
    return dict(pairs)


def _parse(path: Path, raw: bytes, data_size: int) -> Header:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _Duplicate as twice:
        raise HeaderError(
            path, f"names tensor {str(twice)!r} twice", "the file is corrupt: " + _RESAVE
        ) from None
    except RecursionError:
        raise HeaderError(
            path, "its header is JSON nested too deeply to be read", "not a safetensors file"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HeaderError(
            path,
            f"the header is not valid JSON ({error})",
            "this is not a safetensors file or it is corrupt: " + _RESAVE,
        ) from None
    if not isinstance(header, dict):
        raise HeaderError(path, "the header is not a JSON object", "not a safetensors file")
    metadata = _metadata(path, header.pop("__metadata__", None))
    tensors = [_tensor_entry(path, name, entry) for name, entry in header.items()]
    tensors.sort(key=lambda found: (found[1], found[2], found[0].name))
    position = 0
    for info, begin, end in tensors:
        if begin != position:
            where = "overlaps the one before it" if begin < position else "leaves a gap before it"
            raise HeaderError(
                path,
                f"tensor {info.name!r} at bytes {begin}-{end} {where} (safetensors stores "
                "tensors back to back)",
                "the file is corrupt: " + _RESAVE,
            )
        position = end
    if position != data_size:
        raise HeaderError(
            path,
            f"the header says the tensor data is {position} bytes but the file holds {data_size}",
            "the file is truncated or damaged: " + _RESAVE,
        )
    return Header(
        tensors=tuple(info for info, _, _ in tensors),
        metadata=metadata,
        digest=hashlib.sha256(raw).hexdigest(),
    )


def _metadata(path: Path, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise HeaderError(
            path,
            "its __metadata__ is not a map of strings to strings (safetensors requires it)",
            "re-save it with string metadata",
        )
    return {str(k): v for k, v in raw.items()}


def _tensor_entry(path: Path, name: str, entry: object) -> tuple[TensorInfo, int, int]:
    bad = f"tensor {name!r} has a malformed header entry {entry!r}"
    if not isinstance(entry, dict):
        raise HeaderError(path, bad, "the file is corrupt: " + _RESAVE)
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(code, str) or code not in DTYPES:
        raise HeaderError(
            path, f"tensor {name!r} has unknown dtype {code!r}", "upgrade dyntools or re-save it"
        )
    if (
        not isinstance(shape, list)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        raise HeaderError(path, bad, "the file is corrupt: " + _RESAVE)
    dtype, bits = DTYPES[str(code)]
    info = TensorInfo(name=name, shape=tuple(shape), dtype=dtype)
    if (offsets[1] - offsets[0]) * 8 != info.numel * bits:
        raise HeaderError(
            path,
            f"tensor {name!r} of shape {list(shape)} and dtype {code} does not fit its "
            f"{offsets[1] - offsets[0]} bytes",
            "the file is corrupt: " + _RESAVE,
        )
    return info, offsets[0], offsets[1]
