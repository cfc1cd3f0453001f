"""Metric curves over training (steps or epochs), runs overlaid, one panel per (hook point,
metric), with the HMM states of a fit as the background and a brush over time."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from dyntools.charts.style import ordered, panel_width, time_x
from dyntools.checkpoints.records import Axis
from dyntools.views.latent_states.frames import state_domain

BRUSH = "span"  # the interval selection's name: event["selection"]["span"]
PANEL_COLUMNS = 2
PANEL_SEPARATOR = " · "


def panel_name(hook_point: str, metric: str) -> str:
    return f"{hook_point}{PANEL_SEPARATOR}{metric}"


def metric_curves(
    curves: pl.DataFrame,
    axis: Axis,
    *,
    log_scale: bool = False,
    intervals: pl.DataFrame | None = None,
    n_states: int = 0,
    layers: Sequence[str] = (),
) -> alt.FacetChart:
    """Curves (run_id, hook_point, metric, time, value) faceted by hook point and metric, the
    hook points in the order of ``layers`` (network order; default: by name).

    ``intervals`` (run_id, state, start, end), when given, colours the background of every
    panel by the states of the one run they hold.
    """
    panel = curves.with_columns(
        (pl.col("hook_point") + PANEL_SEPARATOR + pl.col("metric")).alias("panel"),
        layer=pl.lit("value"),
    )
    metrics = sorted(set(curves["metric"]))
    panels = [panel_name(hook, metric) for hook in layers for metric in metrics]
    layers_data = panel
    if intervals is not None and not intervals.is_empty():
        backdrop = (
            panel.select("panel")
            .unique()
            .join(intervals.rename({"run_id": "state_run"}), how="cross")
            .with_columns(layer=pl.lit("state"))
        )
        layers_data = pl.concat([panel, backdrop], how="diagonal")
    base = alt.Chart(layers_data.to_arrow())
    # A log axis spans the values, not the powers of ten around them.
    y_scale = alt.Scale(type="log", nice=False) if log_scale else alt.Scale(zero=False)
    brush = alt.selection_interval(encodings=["x"], name=BRUSH)
    lines = (
        base.transform_filter(alt.datum.layer == "value")
        .mark_line(point=alt.OverlayMarkDef(size=12))
        .encode(
            x=time_x(axis),
            y=alt.Y("value:Q", title=None, scale=y_scale),
            color=alt.Color("run_id:N", title="run"),
            tooltip=[
                "run_id:N",
                "hook_point:N",
                "metric:N",
                "step:Q",
                "epoch:Q",
                alt.Tooltip("value:Q", format=".4g"),
            ],
        )
        .add_params(brush)
    )
    marks: list[alt.Chart] = [lines]
    if intervals is not None and not intervals.is_empty():
        labels, colors = state_domain(max(n_states, 1))
        states = (
            base.transform_filter(alt.datum.layer == "state")
            .mark_rect(opacity=0.18)
            .encode(
                x="start:Q",
                x2="end:Q",
                fill=alt.Fill(
                    "state:N", title="HMM state", scale=alt.Scale(domain=labels, range=colors)
                ),
                tooltip=["state_run:N", "state:N", "start:Q", "end:Q"],
            )
        )
        marks = [states, lines]
    chart: alt.FacetChart = (
        alt.layer(*marks)
        .properties(height=180, width=panel_width(PANEL_COLUMNS))
        .facet(facet=alt.Facet("panel:N", title=None, sort=ordered(panels)), columns=PANEL_COLUMNS)
        .resolve_scale(y="independent")
    )
    return chart
