"""Charts of the Activations page: the colorful dimension and the mean/std/dead curves."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from dyntools.charts.style import AXIS_ROOM, ordered, panel_width, time_x
from dyntools.checkpoints.records import Axis

STATS_COLUMNS = 3


def colorful_dimension(
    heatmap: pl.DataFrame, axis: Axis, layers: Sequence[str] = ()
) -> alt.FacetChart:
    """log1p counts per |a| bin (y) over checkpoints (x); hook points in rows (in the order of
    ``layers``), runs in columns, sized to fit the page side by side."""
    runs = heatmap["run_id"].n_unique()
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
        # Only the first column carries the y axis: the others need little room.
        .properties(height=160, width=panel_width(runs, room=AXIS_ROOM // 2 + 10))
        .facet(
            row=alt.Row("hook_point:N", title=None, sort=ordered(layers)),
            column=alt.Column("run_id:N", title=None),
        )
        # Each run its own checkpoints: runs saved at other times leave no empty columns.
        .resolve_scale(x="independent")
    )
    return chart


def activation_stats(
    stats: pl.DataFrame, axis: Axis, layers: Sequence[str] = ()
) -> alt.VConcatChart:
    """Mean with a one-std band and the dead fraction, a panel per hook point (in the order of
    ``layers``, wrapped to fit the page), runs coloured."""
    when = alt.Tooltip("time:Q", title=axis.value)
    base = alt.Chart(
        stats.with_columns(
            (pl.col("act_mean") - pl.col("act_std")).alias("low"),
            (pl.col("act_mean") + pl.col("act_std")).alias("high"),
        ).to_arrow()
    ).encode(
        x=time_x(axis),
        color=alt.Color("run_id:N", title="run"),
    )
    mean = alt.layer(
        base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", title="mean ± std"), y2="high:Q"),
        base.mark_line().encode(
            y="act_mean:Q",
            tooltip=["run_id:N", "hook_point:N", when, "act_mean:Q", "act_std:Q"],
        ),
    ).properties(height=150, width=panel_width(STATS_COLUMNS))
    dead = (
        base.mark_line()
        .encode(
            y=alt.Y("dead_fraction:Q", title="dead fraction", scale=alt.Scale(domain=[0, 1])),
            tooltip=["run_id:N", "hook_point:N", when, "dead_fraction:Q"],
        )
        .properties(height=150, width=panel_width(STATS_COLUMNS))
    )
    facet = alt.Facet("hook_point:N", title=None, sort=ordered(layers))
    chart: alt.VConcatChart = alt.vconcat(
        mean.facet(facet=facet, columns=STATS_COLUMNS),
        dead.facet(facet=facet, columns=STATS_COLUMNS),
    )
    return chart
