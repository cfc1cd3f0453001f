"""``dyntools compute`` end to end: a first compute and an incremental re-run over 1000
unchanged checkpoints (discovery, fingerprints, the store's bookkeeping: everything a user waits
for). Goal for the re-run: under 1 s."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.report import Row
from dyntools.checkpoints import CheckpointWriter
from dyntools.pipeline import ComputeOptions, compute

RUNS, CHECKPOINTS = 10, 100


def _folder(root: Path) -> None:
    torch.manual_seed(0)
    for run in range(RUNS):
        model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
        writer = CheckpointWriter(root / f"run{run}", model, {"task": "bench"})
        for epoch in range(CHECKPOINTS):
            writer.save(epoch, train_loss=1.0)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _folder(root)
        start = time.perf_counter()
        first = compute(root, ComputeOptions(workers=1))
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        again = compute(root, ComputeOptions(workers=1))
        again_s = time.perf_counter() - start
    n = RUNS * CHECKPOINTS
    return [
        Row(
            f"compute {n} small checkpoints, every weight metric",
            first_s,
            None,
            note=f"{first.computed} computed, {first.values_written} values",
        ),
        Row(
            f"re-run over {n} unchanged checkpoints, end to end",
            again_s,
            None,
            goal="< 1 s",
            note=f"{again.computed} computed, {again.skipped} up to date",
        ),
    ]
