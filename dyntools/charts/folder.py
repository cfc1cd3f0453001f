"""Altair chart specifications. Pure functions: frames in, charts out; no streamlit here."""

from __future__ import annotations

import altair as alt
import polars as pl


def training_curves(scalars: pl.DataFrame, *, log_loss: bool = True) -> alt.VConcatChart:
    """Losses and accuracies against epoch, one line per run (tidy scalars frame in)."""
    base = alt.Chart(scalars.to_arrow()).encode(
        x=alt.X("epoch:Q", title="epoch"),
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
