"""Charts of the Activations page: the colorful dimension and the mean/std/dead curves."""

from __future__ import annotations

import altair as alt
import polars as pl

from dyntools.checkpoints.records import Axis


def colorful_dimension(heatmap: pl.DataFrame, axis: Axis) -> alt.FacetChart:
    """log1p counts per |a| bin (y) over checkpoints (x); hook points in rows, runs in columns."""
    chart: alt.FacetChart = (
        alt.Chart(heatmap.to_arrow())
        .mark_rect()
        .encode(
            x=alt.X("time:O", title=axis.value, axis=alt.Axis(labelOverlap=True)),
            y=alt.Y(
                "bin:N",
                title="|activation| bin",
                sort=alt.EncodingSortField("bin_low", order="descending"),
                axis=alt.Axis(labelOverlap=True),
            ),
            color=alt.Color(
                "log1p_count:Q", title="log1p count", scale=alt.Scale(scheme="viridis")
            ),
            tooltip=["run_id:N", "hook_point:N", "step:Q", "epoch:Q", "bin:N", "count:Q"],
        )
        .properties(height=160, width=260)
        .facet(row=alt.Row("hook_point:N", title=None), column=alt.Column("run_id:N", title=None))
    )
    return chart


def activation_stats(stats: pl.DataFrame, axis: Axis) -> alt.VConcatChart:
    """Mean with a one-std band and the dead fraction, per hook point, runs coloured."""
    base = alt.Chart(
        stats.with_columns(
            (pl.col("act_mean") - pl.col("act_std")).alias("low"),
            (pl.col("act_mean") + pl.col("act_std")).alias("high"),
        ).to_arrow()
    ).encode(
        x=alt.X("time:Q", title=axis.value),
        color=alt.Color("run_id:N", title="run"),
    )
    mean = alt.layer(
        base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", title="mean ± std"), y2="high:Q"),
        base.mark_line().encode(
            y="act_mean:Q",
            tooltip=["run_id:N", "hook_point:N", "epoch:Q", "act_mean:Q", "act_std:Q"],
        ),
    ).properties(height=150, width=260)
    dead = (
        base.mark_line()
        .encode(
            y=alt.Y("dead_fraction:Q", title="dead fraction", scale=alt.Scale(domain=[0, 1])),
            tooltip=["run_id:N", "hook_point:N", "epoch:Q", "dead_fraction:Q"],
        )
        .properties(height=150, width=260)
    )
    chart: alt.VConcatChart = alt.vconcat(
        mean.facet(column=alt.Column("hook_point:N", title=None)),
        dead.facet(column=alt.Column("hook_point:N", title=None)),
    )
    return chart
