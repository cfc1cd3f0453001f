"""The rising crash: a layer whose activations' standard deviation grows, then collapses, while
the share of near-zero activations jumps (fast.ai's "colorful dimension": "if early in training
you see this rising crash, rising crash at all, you should stop and restart training").

``find_crashes(read_step_stats(run_dir))`` reads the per-step statistics that
``dyntools.hooks.ActivationStats`` records and returns one ``Crash`` per episode and module. The
rule (docs/metrics.md, "Rising crash"), on each module's recorded steps in order, counting
recorded steps (rows), not optimizer steps, so that ``every=N`` scales the windows with it:

1. rise: a step's std (the peak) is above every std of the ``rise_window`` steps before it,
   and at least ``rise`` times the smallest of them;
2. collapse: within ``window`` steps after the peak the std falls to ``peak / collapse`` or
   below; the first such step is the crash's ``step``, and no std between the peak and it is
   above the peak's;
3. it stays down: the median std of the ``window`` steps from the crash's step
   (``std_after``) is at most ``peak / collapse``;
4. dead units: the mean dead fraction of those ``window`` steps (``dead_after``) exceeds the
   mean of the ``window`` steps up to the peak (``dead_before``) by at least ``dead_rise``.

Rows whose std or dead fraction is not finite (fewer than two finite values, an overflowing
layer) are left out: a run that diverges to NaN or inf is a different failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from dyntools.checkpoints import discover_runs, run_id_for
from dyntools.checkpoints.step_stats import STEP_STATS_DIR, read_step_stats, step_stats_parts

__all__ = [
    "DEFAULT_COLLAPSE",
    "DEFAULT_DEAD_RISE",
    "DEFAULT_RISE",
    "DEFAULT_RISE_WINDOW",
    "DEFAULT_WINDOW",
    "Crash",
    "CrashThresholds",
    "RunCrashes",
    "find_crashes",
    "folder_crashes",
]

# Defaults, chosen on real runs (docs/metrics.md, "Rising crash", has the numbers): crashing
# layers rise 6x to 3000x and fall 10x or more (usually to zero) with the dead fraction up by
# 0.35 to 0.6; healthy layers of the four sample tasks never fall 4x within 10 steps of a peak
# with their dead fraction 0.2 higher.
DEFAULT_RISE: Final = 2.0
DEFAULT_COLLAPSE: Final = 4.0
DEFAULT_DEAD_RISE: Final = 0.2
DEFAULT_WINDOW: Final = 10
DEFAULT_RISE_WINDOW: Final = 50

_REQUIRED: Final = ("step", "module", "std", "dead_fraction")


@dataclass(frozen=True)
class CrashThresholds:
    """The rule's parameters (module docstring); the defaults are ``DEFAULT_*``."""

    rise: float = DEFAULT_RISE
    collapse: float = DEFAULT_COLLAPSE
    dead_rise: float = DEFAULT_DEAD_RISE
    window: int = DEFAULT_WINDOW
    rise_window: int = DEFAULT_RISE_WINDOW

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rise) and self.rise >= 1.0):
            raise ValueError(f"rise must be a factor >= 1, got {self.rise}")
        if not (math.isfinite(self.collapse) and self.collapse > 1.0):
            raise ValueError(f"collapse must be a factor > 1, got {self.collapse}")
        if not (0.0 <= self.dead_rise <= 1.0):
            raise ValueError(f"dead_rise is a share between 0 and 1, got {self.dead_rise}")
        if self.window < 1 or self.rise_window < 1:
            raise ValueError(
                f"window and rise_window count recorded steps (>= 1), got {self.window} "
                f"and {self.rise_window}"
            )


@dataclass(frozen=True)
class Crash:
    """One rising crash of one module's activations."""

    run_id: str | None
    module: str
    step: int  # the first step at which the std is down by the collapse factor
    peak_step: int
    peak_std: float
    std_after: float  # median std of the window from ``step``
    dead_before: float  # mean dead fraction of the window up to the peak
    dead_after: float  # mean dead fraction of the window from ``step``

    def describe(self) -> str:
        """One line: run, layer, step, std peak -> after, dead fraction before -> after."""
        where = f"{self.run_id}: " if self.run_id is not None else ""
        return (
            f"{where}{self.module} crashed at step {self.step}: std {self.peak_std:.3g} "
            f"(step {self.peak_step}) -> {self.std_after:.3g}, dead fraction "
            f"{self.dead_before:.2f} -> {self.dead_after:.2f}"
        )


def find_crashes(
    stats: pl.DataFrame,
    run_id: str | None = None,
    thresholds: CrashThresholds | None = None,
) -> list[Crash]:
    """Every rising crash in one run's per-step statistics (``read_step_stats``), by module in
    recording order, then by step. ``stats`` needs the columns step, module, std and
    dead_fraction; ``run_id`` is copied into each ``Crash``."""
    rule = thresholds or CrashThresholds()
    missing = [name for name in _REQUIRED if name not in stats.columns]
    if missing:
        raise ValueError(
            f"step statistics lack the columns {missing}; read them with read_step_stats"
        )
    finite = stats.select(_REQUIRED).filter(
        pl.col("std").cast(pl.Float64).is_finite()
        & pl.col("dead_fraction").cast(pl.Float64).is_finite()
    )
    crashes: list[Crash] = []
    for module in finite["module"].unique(maintain_order=True).to_list():
        rows = finite.filter(pl.col("module") == module).sort("step")
        crashes.extend(
            _module_crashes(
                run_id,
                str(module),
                rows["step"].to_numpy(),
                rows["std"].cast(pl.Float64).to_numpy(),
                rows["dead_fraction"].cast(pl.Float64).to_numpy(),
                rule,
            )
        )
    return crashes


def _module_crashes(
    run_id: str | None,
    module: str,
    steps: np.ndarray[Any, np.dtype[Any]],
    std: np.ndarray[Any, np.dtype[np.float64]],
    dead: np.ndarray[Any, np.dtype[np.float64]],
    rule: CrashThresholds,
) -> list[Crash]:
    n = len(std)
    if n < 3:  # a peak needs a step before it and one after
        return []
    w, wr = rule.window, rule.rise_window
    # Vectorised over every step first (long runs have 10^5 steps), then the few candidates
    # (a rise followed by a low std) are checked one by one.
    before_max = _rolling(std, -wr, 0, np.max, -np.inf)
    before_min = _rolling(std, -wr, 0, np.min, np.inf)
    after_min = _rolling(std, 1, w + 1, np.min, np.inf)
    candidates = np.flatnonzero(
        (std > 0)
        & (std > before_max)
        & (std >= rule.rise * before_min)
        & (after_min <= std / rule.collapse)
    )
    found = []
    for p in candidates.tolist():
        limit = std[p] / rule.collapse
        c = p + 1 + int(np.flatnonzero(std[p + 1 : p + w + 1] <= limit)[0])
        if np.any(std[p + 1 : c] > std[p]):  # still rising: the peak is later
            continue
        after = slice(c, min(n, c + w))
        std_after = float(np.median(std[after]))
        dead_before = float(np.mean(dead[max(0, p - w + 1) : p + 1]))
        dead_after = float(np.mean(dead[after]))
        if std_after > limit or dead_after - dead_before < rule.dead_rise:
            continue
        found.append(
            Crash(
                run_id=run_id,
                module=module,
                step=int(steps[c]),
                peak_step=int(steps[p]),
                peak_std=float(std[p]),
                std_after=std_after,
                dead_before=dead_before,
                dead_after=dead_after,
            )
        )
    return found


def _rolling(
    values: np.ndarray[Any, np.dtype[np.float64]],
    start: int,
    stop: int,
    reduce: Callable[..., Any],
    fill: float,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``reduce(values[i + start : i + stop])`` for every i, ends clipped; ``fill`` where the
    window is empty (-inf for a max, +inf for a min: an empty window never passes a test)."""
    left, right = max(0, -start), max(0, stop)
    padded = np.concatenate([np.full(left, fill), values, np.full(right, fill)])
    windows = sliding_window_view(padded, stop - start)
    first = left + start
    return np.asarray(reduce(windows[first : first + len(values)], axis=1), dtype=np.float64)


@dataclass(frozen=True)
class RunCrashes:
    """A run's crashes; ``has_stats`` is False when it recorded no step statistics."""

    run_id: str
    path: Path
    has_stats: bool
    crashes: tuple[Crash, ...]


def folder_crashes(
    folder: str | Path, thresholds: CrashThresholds | None = None
) -> list[RunCrashes]:
    """Every run below ``folder`` (``discover_runs``, plus folders that hold step statistics
    but no checkpoint yet: a crash is worth seeing before the first save), sorted by run id,
    with its crashes. A missing folder is a FileNotFoundError; an unreadable statistics file a
    ValueError naming it."""
    discovery = discover_runs(folder)
    root = discovery.root
    paths = {run.run_id: run.path for run in discovery.runs}
    known = {path.resolve() for path in paths.values()}
    for stats in sorted(root.rglob(STEP_STATS_DIR)):
        run_dir = stats.parent
        if stats.is_dir() and run_dir.resolve() not in known and step_stats_parts(run_dir):
            paths.setdefault(run_id_for(root, run_dir), run_dir)
    result = []
    for run_id in sorted(paths):
        path = paths[run_id]
        stats_frame = read_step_stats(path)
        crashes = find_crashes(stats_frame, run_id, thresholds) if stats_frame.height else []
        result.append(RunCrashes(run_id, path, bool(stats_frame.height), tuple(crashes)))
    return result
