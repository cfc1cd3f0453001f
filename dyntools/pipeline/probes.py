"""Probe batches for runs that carry none: made from a file the user gives (``dyntools probe``),
kept beside the database, one per task, and attached to the runs of that task when they are
computed.

For a language model the probe is token sequences: ``x`` a sequence of ``length`` token ids,
``y`` the next token at each position. They come from a plain text file tokenized with the
run's own tokenizer files (``tokenizer.json`` ... in its checkpoint or snapshot folder, read by
transformers offline; never remote code), or from token ids (``.npy`` or ``.safetensors``: a
1-D stream, cut into sequences, or rows of ``length + 1`` ids). For a classifier it is inputs
and labels as given (``.safetensors`` with ``x`` and ``y``, or ``.npy`` inputs with a labels
file).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dyntools.checkpoints import MAX_PROBE_SAMPLES, Probe, Run, read_probe
from dyntools.store.location import probe_path

DEFAULT_SEQUENCES: Final = 64
DEFAULT_LENGTH: Final = 64
# A text file is read up to this size: far more than 512 sequences of 2,048 tokens need.
TEXT_LIMIT: Final = 64 * 2**20
TOKENIZER_FILES: Final = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


@dataclass(frozen=True)
class ProbeRequest:
    """What a probe is made of: the source file, the labels file of a classifier's inputs, how
    many samples (None: 64 token sequences, or every input up to 512) and how many tokens per
    sequence (language models)."""

    source: Path
    labels: Path | None = None
    sequences: int | None = None
    length: int = DEFAULT_LENGTH

    def __post_init__(self) -> None:
        if self.sequences is not None and not 0 < self.sequences <= MAX_PROBE_SAMPLES:
            raise ValueError(f"--sequences takes 1..{MAX_PROBE_SAMPLES}, got {self.sequences}")
        if self.length < 1:
            raise ValueError(f"--length takes a number of tokens >= 1, got {self.length}")


def attach_probes(runs: Sequence[Run], db_path: Path) -> tuple[Run, ...]:
    """The runs, each without a probe of its own given its task's probe where one was made."""
    out = []
    for run in runs:
        path = probe_path(db_path, run.task)
        if run.probe is None and path.is_file():
            run = dataclasses.replace(run, probe=path)
        out.append(run)
    return tuple(out)


def token_probe(tokens: torch.Tensor, request: ProbeRequest, source: Path) -> Probe:
    """Next-token sequences from token ids: a 1-D stream cut into windows of ``length + 1``
    (consecutive, not overlapping), or rows that already are such windows."""
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise ValueError(
            f"{source}: holds {tokens.dtype} values, not token ids: for a classifier's inputs "
            "give their labels with --labels"
        )
    window = request.length + 1
    if tokens.dim() == 1:
        usable = tokens.numel() // window
        windows = tokens[: usable * window].reshape(usable, window)
    elif tokens.dim() == 2 and tokens.shape[1] >= window:
        windows = tokens[:, :window]
    else:
        raise ValueError(
            f"{source}: token ids of shape {tuple(tokens.shape)}: give a 1-D stream or rows of "
            f"at least --length + 1 = {window} ids"
        )
    if windows.shape[0] == 0:
        raise ValueError(
            f"{source}: {tokens.numel()} tokens do not fill one sequence of {window}: give more "
            "text or a smaller --length"
        )
    windows = windows[: request.sequences or DEFAULT_SEQUENCES].long()
    return Probe(windows[:, :-1].contiguous(), windows[:, 1:].contiguous())


def tokenizer_folder(run: Run) -> Path | None:
    """The folder of the run's newest checkpoint, when it holds tokenizer files."""
    for ref in reversed(run.checkpoints):
        folder = ref.files[0].parent
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            return folder
    return None


def _text(request: ProbeRequest, run: Run | None) -> Probe:
    folder = tokenizer_folder(run) if run is not None else None
    if folder is None:
        raise ValueError(
            f"{request.source}: text needs the run's tokenizer, and no checkpoint of "
            f"{run.run_id if run else 'the run'} holds tokenizer files "
            f"({', '.join(TOKENIZER_FILES)}): give token ids as .npy or .safetensors instead"
        )
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise ValueError("tokenizing text needs transformers: pip install 'dyntools[hf]'") from None
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=False
    )
    with request.source.open("rb") as stream:
        text = stream.read(TEXT_LIMIT).decode("utf-8", errors="replace")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return token_probe(torch.tensor(ids, dtype=torch.long), request, request.source)


def _array(path: Path) -> torch.Tensor:
    try:
        loaded = np.load(path, allow_pickle=False)  # an object array is refused, never unpickled
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a numeric .npy array ({error})") from None
    if not isinstance(loaded, np.ndarray):
        raise ValueError(f"{path}: holds several arrays; give one .npy array")
    return torch.from_numpy(np.ascontiguousarray(loaded))


def _numpy(request: ProbeRequest, run: Run | None) -> Probe:
    values = _array(request.source)
    if request.labels is None:
        return token_probe(values, request, request.source)
    return Probe(values, _labels(request.labels))


def _labels(path: Path) -> torch.Tensor:
    if path.suffix == ".safetensors":
        tensors = _safetensors(path)
        if len(tensors) != 1:
            raise ValueError(f"{path}: holds {sorted(tensors)}; a labels file holds one tensor")
        return next(iter(tensors.values()))
    return _array(path)


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: cannot be read as safetensors ({error})") from None


def _tensors(request: ProbeRequest, run: Run | None) -> Probe:
    tensors = _safetensors(request.source)
    if {"x", "y"} <= set(tensors):  # a probe file, as save_probe writes it: read as one
        return read_probe(request.source)
    if request.labels is not None and len(tensors) == 1:
        return Probe(next(iter(tensors.values())), _labels(request.labels))
    ids = tensors.get("input_ids")
    if ids is None and len(tensors) == 1:
        ids = next(iter(tensors.values()))
    if ids is None:
        raise ValueError(
            f"{request.source}: holds {sorted(tensors)}; expected x and y (inputs and labels), "
            "or one tensor of token ids (input_ids)"
        )
    return token_probe(ids, request, request.source)


# How each kind of source file becomes a probe, by suffix.
READERS: Final[dict[str, Callable[[ProbeRequest, Run | None], Probe]]] = {
    ".txt": _text,
    ".npy": _numpy,
    ".safetensors": _tensors,
}


def make_probe(request: ProbeRequest, run: Run | None = None) -> Probe:
    """The probe batch ``request`` describes (``run``: whose tokenizer reads text)."""
    if not request.source.is_file():
        raise FileNotFoundError(f"{request.source}: no such file")
    reader = READERS.get(request.source.suffix.lower())
    if reader is None:
        raise ValueError(
            f"{request.source}: unknown kind of file; give one of {', '.join(READERS)}"
        )
    probe = reader(request, run)
    if probe.x.shape[0] != probe.y.shape[0]:
        raise ValueError(
            f"{request.source}: {probe.x.shape[0]} inputs but {probe.y.shape[0]} labels"
        )
    keep = request.sequences or MAX_PROBE_SAMPLES
    return Probe(probe.x[:keep], probe.y[:keep])
