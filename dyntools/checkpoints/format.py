"""The dyntools run-folder format: names, schema version and the scalar keys.

A run folder holds ``run.json``, one ``epoch_NNNNN.safetensors`` per saved epoch (scalars in the
safetensors header metadata, as strings) and optionally ``probe.safetensors`` with a fixed batch
``x``, ``y`` for activation metrics.
"""

from __future__ import annotations

import re
from typing import Final

RUN_SCHEMA_VERSION: Final = 1
RUN_JSON: Final = "run.json"
PROBE_FILE: Final = "probe.safetensors"
CHECKPOINT_SUFFIX: Final = ".safetensors"
# Temporary files start with a dot and end in ".tmp" so that no glob for checkpoints matches a
# half-written file.
TMP_PREFIX: Final = "."
TMP_SUFFIX: Final = ".tmp"

EPOCH_FILE_RE: Final = re.compile(r"^epoch_(\d+)\.safetensors$")
STEP_FILE_RE: Final = re.compile(r"^step_(\d+)\.safetensors$")

# Metadata keys written by CheckpointWriter.save. Scalars are free-form beyond these.
META_FORMAT: Final = "format"
META_EPOCH: Final = "epoch"
META_STEP: Final = "step"
META_TIED: Final = "dyntools.tied"
STANDARD_SCALARS: Final = ("train_loss", "val_loss", "train_acc", "val_acc")
RESERVED_META: Final = frozenset({META_FORMAT, META_EPOCH, META_STEP, META_TIED})


def epoch_filename(epoch: int) -> str:
    """``epoch_00012.safetensors`` for epoch 12 (wider numbers are kept, never truncated)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return f"epoch_{epoch:05d}{CHECKPOINT_SUFFIX}"
