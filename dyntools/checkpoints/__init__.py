"""Checkpoint formats: the writer training loops call, and the readers of every layout.

This package is a leaf: it imports nothing else of dyntools.

Reading: ``discover_runs(folder)`` finds every run below a folder in any supported layout;
``open_checkpoint(ref)`` reads one checkpoint's tensors lazily.
"""

from dyntools.checkpoints.discover import LAYOUTS, discover_runs, read_run, run_id_for
from dyntools.checkpoints.fingerprint import fingerprint_files
from dyntools.checkpoints.records import (
    CheckpointError,
    CheckpointRef,
    Discovery,
    Fingerprint,
    Problem,
    Run,
    TensorInfo,
)
from dyntools.checkpoints.run_metadata import read_run_json
from dyntools.checkpoints.tensors import TensorSource, open_checkpoint
from dyntools.checkpoints.writer import MAX_PROBE_SAMPLES, CheckpointWriter, prepare_state_dict

__all__ = [
    "LAYOUTS",
    "MAX_PROBE_SAMPLES",
    "CheckpointError",
    "CheckpointRef",
    "CheckpointWriter",
    "Discovery",
    "Fingerprint",
    "Problem",
    "Run",
    "TensorInfo",
    "TensorSource",
    "discover_runs",
    "fingerprint_files",
    "open_checkpoint",
    "prepare_state_dict",
    "read_run",
    "read_run_json",
    "run_id_for",
]
