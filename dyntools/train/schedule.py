"""Checkpoint schedules: which epochs of a run get saved.

Epoch 0 is the initialization (saved before any training); epoch ``e`` is the model after ``e``
passes over the training data. Every schedule keeps epoch 0 and the last epoch.

- ``every``: every epoch.
- ``every N``: epochs 0, N, 2N, ... and the last.
- ``log K``: about K epochs spaced evenly in log(1 + epoch), so long runs keep the fast early
  changes and still cover the late ones, with at most K + 1 files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochSchedule:
    """A parsed schedule: ``kind`` is ``every`` or ``log``; ``value`` is N or K."""

    kind: str
    value: int = 1

    def epochs(self, total_epochs: int) -> tuple[int, ...]:
        """The sorted epochs to save for a run of ``total_epochs`` epochs (0 = initialization)."""
        if total_epochs < 0:
            raise ValueError(f"total_epochs must be >= 0, got {total_epochs}")
        return _BUILDERS[self.kind](self.value, total_epochs)

    def __str__(self) -> str:
        return "every" if self == EpochSchedule("every", 1) else f"{self.kind} {self.value}"


def _every(n: int, total: int) -> tuple[int, ...]:
    return tuple(sorted({*range(0, total + 1, n), total}))


def _log(k: int, total: int) -> tuple[int, ...]:
    if total == 0:
        return (0,)
    top = math.log1p(total)
    points = {round(math.expm1(top * i / k)) for i in range(k + 1)}
    return tuple(sorted(points | {0, total}))


_BUILDERS = {"every": _every, "log": _log}


def parse_schedule(text: str) -> EpochSchedule:
    """``"every"``, ``"every 10"`` or ``"log 60"`` -> EpochSchedule; anything else is a ValueError."""
    words = text.split()
    if not words or words[0] not in _BUILDERS:
        raise ValueError(f"unknown checkpoint schedule {text!r}: use 'every', 'every N' or 'log K'")
    if len(words) == 1 and words[0] == "every":
        return EpochSchedule("every", 1)
    if len(words) != 2 or not (words[1].isascii() and words[1].isdigit()) or int(words[1]) < 1:
        raise ValueError(
            f"bad checkpoint schedule {text!r}: expected 'every N' or 'log K' with a whole "
            "number >= 1"
        )
    return EpochSchedule(words[0], int(words[1]))
