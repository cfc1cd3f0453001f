"""Reading what dyntools writes: ``run.json`` and the scalars in checkpoint header metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dyntools.checkpoints.files import read_json
from dyntools.checkpoints.format import RESERVED_META, RUN_JSON, RUN_SCHEMA_VERSION
from dyntools.checkpoints.records import MAX_STEP, CheckpointError

# run.json describes a run in a few hundred bytes; a megabyte is already not one.
RUN_JSON_LIMIT = 2**20


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """Read and check ``run.json``; errors name the file and what to do."""
    path = run_dir / RUN_JSON
    try:
        config = read_json(path, RUN_JSON_LIMIT)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: a dyntools run folder needs run.json") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            path, f"must hold a JSON object, not a {type(config).__name__}", "re-create the run"
        )
    version = config.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(
            path,
            f"has schema_version {version!r}, which is not a version number (an integer >= 1)",
            "restore the run.json dyntools wrote",
        )
    if version > RUN_SCHEMA_VERSION:
        raise CheckpointError(
            path,
            f"has schema_version {version}; this dyntools reads up to {RUN_SCHEMA_VERSION}",
            "upgrade dyntools (pip install -U dyntools)",
        )
    return config


def parse_scalars(metadata: Mapping[str, str]) -> dict[str, float]:
    """The numeric scalars of a checkpoint's header metadata (reserved keys left out)."""
    scalars: dict[str, float] = {}
    for key, text in metadata.items():
        if key in RESERVED_META:
            continue
        try:
            # NaN and inf are kept: a loss that diverged is what a researcher wants to see.
            scalars[key] = float(text)
        except ValueError:
            continue  # free-form text metadata (notes, hashes) is not a scalar
    return scalars


def int_or_none(text: str | None) -> int | None:
    """A step or epoch number written as text, if it is one a checkpoint can have."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and 0 <= value <= MAX_STEP else None
