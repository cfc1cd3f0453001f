"""Lazy tensor reads from any checkpoint the discovery found.

    with open_checkpoint(ref) as source:
        for name in source.names():
            weights = source.read(name)   # in its stored dtype (bf16 stays bf16)

Safetensors files are read with ``safe_open`` (one tensor at a time, shards through their
index); pickled files are loaded once with ``torch.load(weights_only=True, mmap=True)``, so memory
grows with the tensors read, not with the file size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from stat import S_ISREG
from types import TracebackType
from typing import Any, Final

import torch
from safetensors import SafetensorError, safe_open

from dyntools.checkpoints.records import (
    FORMAT_SAFETENSORS,
    FORMAT_SHARDED,
    FORMAT_TORCH,
    CheckpointError,
    CheckpointRef,
    TensorInfo,
)
from dyntools.checkpoints.torch_pickle import load_pickle, locate_state_dict, state_dict_of

Getter = Callable[[str], torch.Tensor]
_RESCAN: Final = "scan the folder again (dyntools runs FOLDER) and retry"


class CheckpointReader:
    """The tensors of one checkpoint, read on demand. Use it as a context manager."""

    def __init__(self, ref: CheckpointRef, getter: Getter, stack: ExitStack) -> None:
        self.ref = ref
        self._getter = getter
        self._stack = stack
        self._infos = {info.name: info for info in ref.tensors}

    def names(self) -> list[str]:
        """Tensor names in file order, with the Lightning/wrapper prefix removed."""
        return list(self._infos)

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(
                f"{self.ref.path} has no tensor {name!r}; it has {len(self._infos)} tensors, "
                f"e.g. {', '.join(list(self._infos)[:5])}"
            ) from None

    def shape(self, name: str) -> tuple[int, ...]:
        return self.info(name).shape

    def dtype(self, name: str) -> str:
        return self.info(name).dtype

    def read(self, name: str) -> torch.Tensor:
        """One tensor, in the dtype it is stored in: the metrics upcast what they compute on and
        judge what a difference can mean from the stored precision."""
        self.info(name)  # an unknown name raises KeyError naming the checkpoint
        try:
            tensor: torch.Tensor = self._getter(self.ref.strip_prefix + name)
        except OSError as error:
            raise _os_error(Path(error.filename or self.ref.path), error) from None
        return tensor

    def read_many(self, names: list[str]) -> dict[str, torch.Tensor]:
        return {name: self.read(name) for name in names}

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)


def _os_error(path: Path, error: OSError) -> OSError:
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f"{path} was deleted after the folder was scanned: {_RESCAN}")
    if isinstance(error, PermissionError):
        return PermissionError(
            f"{path}: permission denied; make it readable (chmod a+r) or run as its owner"
        )
    return OSError(f"{path}: cannot be read ({error.strerror or error}); {_RESCAN}")


def _open_safetensors(ref: CheckpointRef, stack: ExitStack) -> Getter:
    handles: dict[str, Any] = {}
    for path in ref.files:
        handle = stack.enter_context(safe_open(str(path), framework="pt"))
        for key in handle.keys():  # noqa: SIM118 - the handle is not iterable
            handles[key] = handle
    return lambda key: handles[key].get_tensor(key)


def _open_torch(ref: CheckpointRef, stack: ExitStack) -> Getter:
    path = ref.files[0]
    loaded = load_pickle(path)
    state: Mapping[str, torch.Tensor] = state_dict_of(
        loaded, locate_state_dict(path, loaded, ref.container_key)
    )
    return lambda key: state[key]


OPENERS: Final[dict[str, Callable[[CheckpointRef, ExitStack], Getter]]] = {
    FORMAT_SAFETENSORS: _open_safetensors,
    FORMAT_SHARDED: _open_safetensors,
    FORMAT_TORCH: _open_torch,
}


def open_checkpoint(ref: CheckpointRef) -> CheckpointReader:
    """Open one checkpoint for lazy reads; errors name the file and say what to do.

    A file deleted, made unreadable or rewritten since the scan raises OSError or
    CheckpointError (a ValueError) telling to scan again.
    """
    opener = OPENERS.get(ref.format)
    if opener is None:
        raise ValueError(f"{ref.path}: unknown checkpoint format {ref.format!r}")
    size = 0
    mtime_ns = 0
    for path in ref.files:
        try:
            stat = path.stat()
        except OSError as error:
            raise _os_error(path, error) from None
        if not S_ISREG(stat.st_mode):  # swapped for a FIFO or device since the scan
            raise CheckpointError(path, "is no longer a regular file", _RESCAN)
        size += stat.st_size
        mtime_ns = max(mtime_ns, stat.st_mtime_ns)
    if (size, mtime_ns) != (ref.fingerprint.size, ref.fingerprint.mtime_ns):
        raise CheckpointError(ref.path, "the files changed since the folder was scanned", _RESCAN)
    stack = ExitStack()
    try:
        getter = opener(ref, stack)
    except OSError as error:
        stack.close()
        raise _os_error(Path(error.filename or ref.path), error) from None
    except CheckpointError:
        stack.close()
        raise
    except SafetensorError as error:  # a file damaged since the scan
        stack.close()
        raise CheckpointError(
            ref.path, f"cannot be opened ({error})", "it changed or is damaged: " + _RESCAN
        ) from None
    return CheckpointReader(ref, getter, stack)
