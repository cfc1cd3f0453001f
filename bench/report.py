"""A benchmark result row and the table printer shared by every benchmark module."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One comparison: ours vs the peer (seconds or bytes), with the goal it is held to."""

    benchmark: str
    ours: float
    peer: float | None
    unit: str = "s"
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better ours is than the peer (peer / ours)."""
        if self.peer is None or self.ours <= 0:
            return None
        return self.peer / self.ours


def best_of(repeats: int, func: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeats`` wall-clock timings of ``func`` and its last result."""
    best = float("inf")
    result: T | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    assert result is not None or repeats > 0
    return best, result  # type: ignore[return-value]


def print_table(rows: Iterable[Row]) -> None:
    header = f"{'benchmark':58} {'ours':>10} {'peer':>10} {'ratio':>7}  goal / note"
    print(header)
    print("-" * len(header))
    for row in rows:
        peer = "" if row.peer is None else f"{row.peer:10.4g}"
        ratio = "" if row.ratio is None else f"{row.ratio:6.2f}x"
        extra = "; ".join(part for part in (row.goal, row.note) if part)
        print(f"{row.benchmark:58} {row.ours:10.4g} {peer:>10} {ratio:>7}  {row.unit} {extra}")
