"""The Folder page's chart: losses and accuracies over training."""

from __future__ import annotations

from typing import Final

import altair as alt
import polars as pl

from dyntools.charts.style import time_x
from dyntools.checkpoints.records import Axis

# Standard scalar -> (panel, split); other scalars are in the data download, not the chart.
CURVES: Final = {
    "train_loss": ("loss", "train"),
    "val_loss": ("loss", "validation"),
    "train_acc": ("accuracy", "train"),
    "val_acc": ("accuracy", "validation"),
}
# Two splits, two clearly different strokes: solid for train, long dashes for validation.
SPLIT_DASHES: Final = {"train": [1, 0], "validation": [8, 4]}


def training_curves(
    scalars: pl.DataFrame, axis: Axis, *, log_loss: bool = True
) -> alt.VConcatChart | None:
    """Losses and accuracies over training (tidy scalars with ``time``): a panel for each that
    was logged, one colour per run, train solid and validation dashed; None when no run logged
    a loss or an accuracy."""
    known = scalars.filter(pl.col("name").is_in(list(CURVES)))
    if known.is_empty():
        return None
    curves = known.with_columns(
        panel=pl.col("name").replace_strict({n: p for n, (p, _) in CURVES.items()}),
        split=pl.col("name").replace_strict({n: s for n, (_, s) in CURVES.items()}),
    )
    base = alt.Chart(curves.to_arrow()).encode(
        x=time_x(axis),
        color=alt.Color("run_id:N", title="run"),
        strokeDash=alt.StrokeDash(
            "split:N",
            title="split",
            scale=alt.Scale(domain=list(SPLIT_DASHES), range=list(SPLIT_DASHES.values())),
        ),
        tooltip=["run_id:N", "epoch:Q", "step:Q", "name:N", alt.Tooltip("value:Q", format=".4g")],
    )
    # A log axis spans the values, not the powers of ten around them.
    loss_scale = alt.Scale(type="log", nice=False) if log_loss else alt.Scale(zero=False)
    scales = {"loss": loss_scale, "accuracy": alt.Scale(domain=[0, 1])}
    panels = [
        base.transform_filter(alt.datum.panel == panel)
        .mark_line()
        .encode(y=alt.Y("value:Q", title=panel, scale=scale))
        .properties(height=220, width="container")
        for panel, scale in scales.items()
        if panel in set(curves["panel"])
    ]
    chart: alt.VConcatChart = alt.vconcat(*panels).resolve_scale(color="shared")
    return chart
