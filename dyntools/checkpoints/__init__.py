"""Checkpoint formats: the writer training loops call, and the readers of every layout.

This package is a leaf: it imports nothing else of dyntools.
"""

from dyntools.checkpoints.own_layout import (
    Checkpoint,
    OwnRun,
    find_own_runs,
    read_checkpoint,
    read_own_run,
    read_run_json,
)
from dyntools.checkpoints.writer import MAX_PROBE_SAMPLES, CheckpointWriter, prepare_state_dict

__all__ = [
    "MAX_PROBE_SAMPLES",
    "Checkpoint",
    "CheckpointWriter",
    "OwnRun",
    "find_own_runs",
    "prepare_state_dict",
    "read_checkpoint",
    "read_own_run",
    "read_run_json",
]
