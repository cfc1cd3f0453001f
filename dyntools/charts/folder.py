"""Altair chart specifications. Pure functions: frames in, charts out; no streamlit here."""

from __future__ import annotations

import altair as alt
import polars as pl

from dyntools.checkpoints.records import Axis


def training_curves(
    scalars: pl.DataFrame, axis: Axis, *, log_loss: bool = True
) -> alt.VConcatChart:
    """Losses and accuracies over training, one line per run (tidy scalars with ``time``)."""
    base = alt.Chart(scalars.to_arrow()).encode(
        x=alt.X("time:Q", title=axis.value),
        color=alt.Color("run_id:N", title="run"),
        strokeDash=alt.StrokeDash("name:N", title="split"),
        tooltip=["run_id:N", "epoch:Q", "step:Q", "name:N", alt.Tooltip("value:Q", format=".4g")],
    )
    loss_scale = alt.Scale(type="log") if log_loss else alt.Scale()
    loss = (
        base.transform_filter(
            alt.FieldOneOfPredicate(field="name", oneOf=["train_loss", "val_loss"])
        )
        .mark_line()
        .encode(y=alt.Y("value:Q", title="loss", scale=loss_scale))
        .properties(height=220, width="container")
    )
    accuracy = (
        base.transform_filter(alt.FieldOneOfPredicate(field="name", oneOf=["train_acc", "val_acc"]))
        .mark_line()
        .encode(y=alt.Y("value:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])))
        .properties(height=220, width="container")
    )
    chart: alt.VConcatChart = alt.vconcat(loss, accuracy).resolve_scale(color="shared")
    return chart
