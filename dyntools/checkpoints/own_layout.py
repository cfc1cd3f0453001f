"""Reader for dyntools' own run-folder layout (``run.json`` + ``epoch_NNNNN.safetensors``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from dyntools.checkpoints.format import (
    EPOCH_FILE_RE,
    META_EPOCH,
    META_STEP,
    PROBE_FILE,
    RESERVED_META,
    RUN_JSON,
    RUN_SCHEMA_VERSION,
    STEP_FILE_RE,
)


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint: where it is, its epoch and step, and the scalars stored with it."""

    path: Path
    step: int
    epoch: int | None
    scalars: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnRun:
    """A run folder in dyntools' own layout."""

    path: Path
    config: Mapping[str, Any]
    checkpoints: tuple[Checkpoint, ...]
    probe: Path | None


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """Read and check ``run.json``; errors name the file and what to do."""
    path = run_dir / RUN_JSON
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: a dyntools run folder needs run.json") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}): restore it or re-create the run"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    version = config.get("schema_version")
    if not isinstance(version, int) or version > RUN_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema_version {version!r}; this dyntools reads up to "
            f"{RUN_SCHEMA_VERSION}: upgrade dyntools"
        )
    return config


def parse_scalars(metadata: Mapping[str, str]) -> dict[str, float]:
    """The numeric scalars of a checkpoint's header metadata (reserved keys left out)."""
    scalars: dict[str, float] = {}
    for key, text in metadata.items():
        if key in RESERVED_META:
            continue
        try:
            scalars[key] = float(text)
        except ValueError:
            continue  # free-form text metadata (notes, hashes) is not a scalar
    return scalars


def read_checkpoint(path: Path) -> Checkpoint:
    """Read one checkpoint's header (not its tensors)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    match = EPOCH_FILE_RE.match(path.name) or STEP_FILE_RE.match(path.name)
    number = int(match.group(1)) if match else None
    epoch = int_or_none(metadata.get(META_EPOCH))
    if epoch is None and path.name.startswith("epoch_"):
        epoch = number
    step = int_or_none(metadata.get(META_STEP))
    if step is None:
        step = number if number is not None else (epoch or 0)
    return Checkpoint(path=path, step=step, epoch=epoch, scalars=parse_scalars(metadata))


def int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoint files of a run folder, in numeric order of the number in their name."""
    files = [
        path
        for path in run_dir.iterdir()
        if EPOCH_FILE_RE.match(path.name) or STEP_FILE_RE.match(path.name)
    ]
    return sorted(files, key=lambda p: (int(p.stem.split("_")[1]), p.name))


def read_own_run(run_dir: str | Path) -> OwnRun:
    """Read a run folder's ``run.json`` and every checkpoint header, sorted by step."""
    run_path = Path(run_dir)
    config = read_run_json(run_path)
    checkpoints = sorted(
        (read_checkpoint(path) for path in checkpoint_files(run_path)),
        key=lambda c: (c.step, c.path.name),
    )
    probe = run_path / PROBE_FILE
    return OwnRun(
        path=run_path,
        config=config,
        checkpoints=tuple(checkpoints),
        probe=probe if probe.is_file() else None,
    )


def find_own_runs(folder: str | Path) -> list[Path]:
    """Every folder at or below ``folder`` that holds a ``run.json``, sorted by path."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: check the path")
    if (root / RUN_JSON).is_file():
        return [root]
    return sorted(path.parent for path in root.rglob(RUN_JSON))
