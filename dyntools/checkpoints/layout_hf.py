"""Layout 2, Hugging Face Trainer: ``OUTPUT/checkpoint-N/`` with ``model.safetensors`` (or
shards ``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``, or a legacy
``pytorch_model.bin``) and ``trainer_state.json``.

N is the global step. Losses come from ``log_history`` in ``trainer_state.json``: each logged
value belongs to the first checkpoint at or after its step (a value logged after the last
checkpoint belongs to none). ``loss`` is renamed ``train_loss`` and ``eval_loss`` ``val_loss``;
timing entries (``*_runtime``, ``*_per_second``, ``total_flos``) and the end-of-training
summary are left out.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from dyntools.checkpoints.files import read_json
from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import MAX_STEP, CheckpointError, CheckpointRef, Problem
from dyntools.checkpoints.run_builder import (
    assemble_run,
    problem_for,
    safetensors_ref,
    torch_ref,
    with_scalars,
)
from dyntools.checkpoints.safetensors_header import read_header

NAME = "hf-trainer"
CHECKPOINT_DIR_RE: Final = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE: Final = "trainer_state.json"
CONFIG_JSON: Final = "config.json"
# Weight files in the order they are looked for inside checkpoint-N/.
SINGLE_FILES: Final = ("model.safetensors", "adapter_model.safetensors")
SAFETENSORS_INDEX: Final = "model.safetensors.index.json"
PICKLE_FILE: Final = "pytorch_model.bin"
RENAMED: Final = {"loss": "train_loss", "eval_loss": "val_loss"}
SKIPPED_SUFFIXES: Final = ("_runtime", "_per_second")
SKIPPED_KEYS: Final = frozenset({"step", "epoch", "total_flos"})


def detect(listing: Listing) -> bool:
    if any(CHECKPOINT_DIR_RE.match(name) for name in listing.dirs):
        return True
    # The folder given may itself be one checkpoint-N/.
    return bool(CHECKPOINT_DIR_RE.match(listing.path.name)) and _has_weights(listing.files)


def _has_weights(files: Sequence[str]) -> bool:
    names = set(files)
    return bool(names & {*SINGLE_FILES, SAFETENSORS_INDEX, PICKLE_FILE})


def read(listing: Listing, run_id: str) -> Claim:
    problems: list[Problem] = []
    if CHECKPOINT_DIR_RE.match(listing.path.name) and _has_weights(listing.files):
        folders = [listing.path]
        # One checkpoint folder on its own: it is the whole run.
        owned = frozenset(listing.files) | frozenset(listing.dirs)
    else:
        folders = [listing.path / n for n in listing.dirs if CHECKPOINT_DIR_RE.match(n)]
        # The final model save_model() writes beside the checkpoints has no step: not read.
        owned = frozenset(n for n in listing.dirs if CHECKPOINT_DIR_RE.match(n)) | frozenset(
            listing.files
        )
    candidates: list[CheckpointRef] = []
    history: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    for folder in sorted(folders, key=_step_of):
        step = _step_of(folder)
        state = _read_json(folder / TRAINER_STATE, problems)
        history.extend(_entries(state))
        config = _read_json(folder / CONFIG_JSON, problems, required=False) or config
        try:
            ref = model_checkpoint(folder, step, _epoch(state))
        except (ValueError, OSError) as error:
            problems.append(problem_for(weights_path(folder), error))
            continue
        candidates.append(ref)
    candidates = _attach(candidates, history)
    run = assemble_run(
        run_id=run_id,
        path=listing.path,
        layout=NAME,
        candidates=candidates,
        problems=problems,
        config=config,
    )
    return Claim(runs=(run,), owned=owned)


def _step_of(folder: Path) -> int:
    match = CHECKPOINT_DIR_RE.match(folder.name)
    return int(match.group(1)) if match else 0


def weights_path(folder: Path) -> Path:
    """The file a checkpoint folder's weights are read from (the folder when it has none)."""
    for name in (*SINGLE_FILES, SAFETENSORS_INDEX, PICKLE_FILE):
        if (folder / name).exists():
            return folder / name
    return folder


def model_checkpoint(folder: Path, step: int, epoch: float | None) -> CheckpointRef:
    """The checkpoint in a folder as save_pretrained writes it: one safetensors file, shards
    with their index, or a pickled pytorch_model.bin (also the hub cache's snapshots)."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        return _sharded(folder, index, step, epoch)
    for name in SINGLE_FILES:
        if (folder / name).is_file():
            return safetensors_ref([folder / name], step=step, epoch=epoch)
    if (folder / PICKLE_FILE).is_file():
        ref, _ = torch_ref(folder / PICKLE_FILE, step=step, epoch=epoch)
        return ref
    raise CheckpointError(
        folder,
        "holds no model weights",
        f"expected {SINGLE_FILES[0]}, {SAFETENSORS_INDEX} with its shards, or {PICKLE_FILE}",
    )


def _sharded(folder: Path, index: Path, step: int, epoch: float | None) -> CheckpointRef:
    loaded = read_json(index)
    weight_map = loaded.get("weight_map") if isinstance(loaded, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(
            index,
            "not a valid shard index (no weight_map of tensor names to shard files)",
            "save the checkpoint again",
        )
    shards = sorted(set(weight_map.values()))
    outside = [shard for shard in shards if not _plain_file_name(shard)]
    if outside:
        raise CheckpointError(
            index,
            f"names a shard outside its checkpoint folder ({outside[0]!r}): not followed",
            "a shard index names files beside it; this one was not written by a trainer",
        )
    files = [folder / shard for shard in shards]
    headers = []
    for path in files:
        if not path.is_file():
            raise CheckpointError(
                path, f"is named in {index.name} but missing", "copy the missing shard back"
            )
        headers.append(read_header(path))
    for path, header in zip(files, headers, strict=True):
        have = {info.name for info in header.tensors}
        missing = [n for n, shard in weight_map.items() if shard == path.name and n not in have]
        if missing:
            raise CheckpointError(
                path,
                f"lacks {missing[0]!r}, which {index.name} places there",
                "the shard and the index do not match: save the checkpoint again",
            )
    return safetensors_ref(files, step=step, epoch=epoch, headers=headers)


def _plain_file_name(name: str) -> bool:
    """A name of a file in the same folder: no separator, not absolute, not . or .."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _read_json(path: Path, problems: list[Problem], *, required: bool = True) -> dict[str, Any]:
    try:
        data = read_json(path)
    except FileNotFoundError:
        if required:
            problems.append(
                Problem(path, "missing", "its losses are unknown; weights are still read")
            )
        return {}
    except CheckpointError as error:
        problems.append(Problem(path, error.what, "its losses are unknown; weights are still read"))
        return {}
    except OSError as error:
        problems.append(problem_for(path, error))
        return {}
    return data if isinstance(data, dict) else {}


def _epoch(state: Mapping[str, Any]) -> float | None:
    # The Trainer counts fractional epochs (0.5 halfway through the first): kept as they are.
    epoch = state.get("epoch")
    if isinstance(epoch, int | float) and not isinstance(epoch, bool) and math.isfinite(epoch):
        return float(epoch)
    return None


def _entries(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    history = state.get("log_history")
    if not isinstance(history, list):
        return []
    return [
        e
        for e in history
        if isinstance(e, dict)
        and isinstance(e.get("step"), int)
        and not isinstance(e.get("step"), bool)
        and 0 <= e["step"] <= MAX_STEP
    ]


def _scalars(entry: Mapping[str, Any]) -> dict[str, float]:
    if "train_runtime" in entry:  # the end-of-training summary, not a point of the curve
        return {}
    out = {}
    for key, value in entry.items():
        if key in SKIPPED_KEYS or key.endswith(SKIPPED_SUFFIXES) or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[RENAMED.get(key, key)] = float(value)
    return out


def _attach(refs: list[CheckpointRef], history: list[dict[str, Any]]) -> list[CheckpointRef]:
    # Each checkpoint's trainer_state.json repeats the earlier history: keep one value per
    # (step, name), and give each to the first checkpoint at or after its step.
    steps = sorted(ref.step for ref in refs)
    per_step: dict[int, dict[str, float]] = {}
    for entry in sorted(history, key=lambda e: int(e["step"])):
        per_step.setdefault(int(entry["step"]), {}).update(_scalars(entry))
    per_checkpoint: dict[int, dict[str, float]] = {}
    for logged_step, values in sorted(per_step.items()):
        position = bisect_left(steps, logged_step)
        if position < len(steps):
            per_checkpoint.setdefault(steps[position], {}).update(values)
    return [with_scalars(ref, per_checkpoint.get(ref.step, {})) for ref in refs]


# The Trainer writes tmp-checkpoint-N/ and renames it checkpoint-N/ when complete.
READER = LayoutReader(name=NAME, detect=detect, read=read, atomic=True)
