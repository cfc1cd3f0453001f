"""The time axis of the charts: the step always, the epoch where every shown checkpoint states
one. A step never stands in for a missing epoch: a frame is placed on one axis, whole."""

from __future__ import annotations

import polars as pl

from dyntools.checkpoints.records import AUTO_AXIS, Axis


def axes_of(frame: pl.DataFrame) -> tuple[Axis, ...]:
    """The axes ``frame`` (with ``step`` and ``epoch`` columns) can be placed on."""
    complete = frame.height > 0 and frame["epoch"].null_count() == 0
    return (Axis.STEP, Axis.EPOCH) if complete else (Axis.STEP,)


def frame_axis(frame: pl.DataFrame, asked: str) -> Axis:
    """The axis asked for when every row of ``frame`` can be placed on it, else the step;
    ``auto`` (or anything unknown, such as an edited URL) is the epoch where every row states
    one."""
    available = axes_of(frame)
    wanted = asked if asked in {axis.value for axis in available} else AUTO_AXIS
    return available[-1] if wanted == AUTO_AXIS else Axis(wanted)


def with_time(frame: pl.DataFrame, axis: Axis) -> pl.DataFrame:
    """``frame`` with a ``time`` column: its step or its epoch, as a float."""
    return frame.with_columns(time=pl.col(axis.value).cast(pl.Float64))
