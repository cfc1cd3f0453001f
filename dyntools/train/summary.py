"""Grokking summary of modular-addition runs: when training and validation accuracy arrive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dyntools.checkpoints import read_run


@dataclass(frozen=True)
class GrokkingRow:
    """First saved epochs reaching the thresholds (None: never reached in the run)."""

    run: str
    first_train_epoch: int | None
    first_val_epoch: int | None
    val_acc_at_first_train: float  # NaN when training accuracy never got there
    final_val_acc: float
    n_checkpoints: int


def first_epoch(epochs: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first epoch whose value is >= ``threshold``, or None."""
    return next((e for e, v in zip(epochs, values, strict=True) if v >= threshold), None)


def grokking_row(
    run_dir: Path, name: str, train_threshold: float = 0.99, val_threshold: float = 0.9
) -> GrokkingRow:
    """Read a run's checkpoint headers and find the first epochs over the thresholds."""
    run = read_run(run_dir)
    checkpoints = [c for c in run.checkpoints if c.epoch is not None]
    epochs = [int(c.epoch) for c in checkpoints if c.epoch is not None]
    train = [c.scalars.get("train_acc", float("nan")) for c in checkpoints]
    val = [c.scalars.get("val_acc", float("nan")) for c in checkpoints]
    first_train = first_epoch(epochs, train, train_threshold)
    return GrokkingRow(
        run=name,
        first_train_epoch=first_train,
        first_val_epoch=first_epoch(epochs, val, val_threshold),
        val_acc_at_first_train=(
            float("nan") if first_train is None else val[epochs.index(first_train)]
        ),
        final_val_acc=val[-1] if val else float("nan"),
        n_checkpoints=len(checkpoints),
    )


def grokking_table(rows: Iterable[GrokkingRow]) -> str:
    """A Markdown table of the rows."""
    lines = [
        "| run | first epoch train_acc >= 0.99 | val_acc then | first epoch val_acc >= 0.9 "
        "| final val_acc | checkpoints |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.run} | {_text(row.first_train_epoch)} | {row.val_acc_at_first_train:.3f} | "
            f"{_text(row.first_val_epoch)} | {row.final_val_acc:.3f} | {row.n_checkpoints} |"
        )
    return "\n".join(lines)


def _text(epoch: int | None) -> str:
    return "never" if epoch is None else str(epoch)
