"""The chart of the Information plane page."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from dyntools.charts.style import ordered, panel_width
from dyntools.checkpoints.records import Axis

RUN_COLUMNS = 2


def information_plane(
    frame: pl.DataFrame, axis: Axis, layers: Sequence[str] = ()
) -> alt.FacetChart:
    """HSIC(H, X) vs HSIC(H, Y) per layer, one trajectory per hook point ordered in time; a
    panel per run, wrapped to fit the page; layers coloured in the order of ``layers``."""
    base = alt.Chart(frame.to_arrow()).encode(
        x=alt.X("hsic_x:Q", title="HSIC(H, X)", scale=alt.Scale(zero=False)),
        y=alt.Y("hsic_y:Q", title="HSIC(H, Y)", scale=alt.Scale(zero=False)),
        color=alt.Color("hook_point:N", title="layer", sort=ordered(layers)),
        order=alt.Order("step:Q"),
        tooltip=["run_id:N", "hook_point:N", "step:Q", "epoch:Q", "hsic_x:Q", "hsic_y:Q"],
    )
    chart: alt.FacetChart = (
        alt.layer(
            base.mark_line(opacity=0.6),
            base.mark_circle().encode(
                size=alt.Size("time:Q", title=axis.value, scale=alt.Scale(range=[10, 120]))
            ),
        )
        .properties(height=300, width=panel_width(RUN_COLUMNS))
        .facet(facet=alt.Facet("run_id:N", title=None), columns=RUN_COLUMNS)
    )
    return chart
