"""Grokking summary: first epochs over a threshold, read back from a run's checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from dyntools.checkpoints import CheckpointWriter
from dyntools.train.summary import first_epoch, grokking_row, grokking_table


def test_first_epoch() -> None:
    assert first_epoch([0, 10, 20, 30], [0.1, 0.99, 0.5, 1.0], 0.99) == 10
    assert first_epoch([0, 10], [0.1, 0.2], 0.9) is None
    assert first_epoch([], [], 0.9) is None


def test_row_and_table_from_a_hand_made_run(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, torch.nn.Linear(2, 2), {"task": "t"})
    for epoch, train_acc, val_acc in [(0, 0.1, 0.0), (50, 0.995, 0.2), (100, 1.0, 0.95)]:
        writer.save(epoch, train_acc=train_acc, val_acc=val_acc)
    row = grokking_row(tmp_path, "seed0")
    assert (row.first_train_epoch, row.first_val_epoch, row.n_checkpoints) == (50, 100, 3)
    assert row.final_val_acc == 0.95 and row.val_acc_at_first_train == 0.2
    table = grokking_table([row])
    assert "| seed0 | 50 | 0.200 | 100 | 0.950 | 3 |" in table
