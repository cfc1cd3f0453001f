"""Reading what dyntools writes: ``run.json`` and the scalars in checkpoint header metadata."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dyntools.checkpoints.format import RESERVED_META, RUN_JSON, RUN_SCHEMA_VERSION


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


def int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None
