"""Checkpoint formats: the writer training loops call, and the readers of every layout.

This package is a leaf: it imports nothing else of dyntools.

Reading: ``discover_runs(folder)`` finds every run below a folder in any supported layout;
``open_checkpoint(ref)`` reads one checkpoint's tensors lazily.
"""

from typing import TYPE_CHECKING

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
    task_from,
)
from dyntools.checkpoints.run_metadata import read_run_json
from dyntools.lazy import lazy_exports

if TYPE_CHECKING:  # the real imports, for type checkers only
    from dyntools.checkpoints.probe import (
        MAX_PROBE_SAMPLES,
        Probe,
        probe_digest,
        read_probe,
        write_probe,
    )
    from dyntools.checkpoints.tensors import CheckpointReader, open_checkpoint
    from dyntools.checkpoints.writer import CheckpointWriter, prepare_state_dict

# Reading tensors and writing checkpoints need torch; finding runs does not. These names are
# loaded on first use, so that ``discover_runs`` (the app's first page) does not import torch.
_TORCH_EXPORTS: dict[str, str] = {
    "Probe": "probe",
    "probe_digest": "probe",
    "read_probe": "probe",
    "CheckpointReader": "tensors",
    "open_checkpoint": "tensors",
    "MAX_PROBE_SAMPLES": "probe",
    "write_probe": "probe",
    "CheckpointWriter": "writer",
    "prepare_state_dict": "writer",
}

__all__ = [
    "LAYOUTS",
    "MAX_PROBE_SAMPLES",
    "CheckpointError",
    "CheckpointReader",
    "CheckpointRef",
    "CheckpointWriter",
    "Discovery",
    "Fingerprint",
    "Probe",
    "Problem",
    "Run",
    "TensorInfo",
    "discover_runs",
    "fingerprint_files",
    "open_checkpoint",
    "prepare_state_dict",
    "probe_digest",
    "read_probe",
    "read_run",
    "read_run_json",
    "run_id_for",
    "task_from",
    "write_probe",
]


__getattr__ = lazy_exports(__name__, _TORCH_EXPORTS)
