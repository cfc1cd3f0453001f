"""Metric curves over training (steps or epochs), runs overlaid, one panel per (series,
metric): the HMM states of a fit as the background, or each run's points coloured by its own
states; a brush over time; smoothed curves drawn over their faint raw values."""

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
RAW_OPACITY = 0.25  # the raw curve behind a smoothed one, as TensorBoard draws it

TOOLTIP: list[str | alt.Tooltip] = [
    "run_id:N",
    "series:N",
    "metric:N",
    "step:Q",
    "epoch:Q",
    alt.Tooltip("value:Q", format=".4g"),
]


def panel_name(series: str, metric: str) -> str:
    return f"{series}{PANEL_SEPARATOR}{metric}"


def _panels(curves: pl.DataFrame, series_order: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """The curves with their panel's name, and the panels in order (series, then metric)."""
    metrics = sorted(set(curves["metric"]))
    names = [panel_name(series, metric) for series in series_order for metric in metrics]
    panel = pl.col("series") + PANEL_SEPARATOR + pl.col("metric")
    return curves.with_columns(panel.alias("panel"), layer=pl.lit("value")), names


def _y(log_scale: bool, field: str = "value") -> alt.Y:
    # A log axis spans the values, not the powers of ten around them.
    scale = alt.Scale(type="log", nice=False) if log_scale else alt.Scale(zero=False)
    return alt.Y(f"{field}:Q", title=None, scale=scale)


def _facet(layers: alt.LayerChart | alt.Chart, panels: list[str]) -> alt.FacetChart:
    chart: alt.FacetChart = (
        layers.properties(height=180, width=panel_width(PANEL_COLUMNS))
        .facet(facet=alt.Facet("panel:N", title=None, sort=ordered(panels)), columns=PANEL_COLUMNS)
        .resolve_scale(y="independent")
    )
    return chart


def metric_curves(
    curves: pl.DataFrame,
    axis: Axis,
    *,
    log_scale: bool = False,
    intervals: pl.DataFrame | None = None,
    n_states: int = 0,
    series_order: Sequence[str] = (),
) -> alt.FacetChart:
    """Curves (run_id, series, metric, time, value; ``smoothed`` too when smoothing) faceted by
    series and metric, in the order of ``series_order`` (network order).
    ``intervals`` (run_id, state, start, end), when given, colours the background of every
    panel by the states of the one run they hold.
    """
    panel, panels = _panels(curves, series_order)
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
    brush = alt.selection_interval(encodings=["x"], name=BRUSH)
    values = base.transform_filter(alt.datum.layer == "value").encode(
        x=time_x(axis), color=alt.Color("run_id:N", title="run"), tooltip=TOOLTIP
    )
    if "smoothed" in curves.columns:
        lines: alt.Chart | alt.LayerChart = alt.LayerChart(
            layer=[
                values.mark_line(opacity=RAW_OPACITY).encode(y=_y(log_scale)),
                values.mark_line().encode(y=_y(log_scale, "smoothed")).add_params(brush),
            ]
        )
    else:
        lines = (
            values.mark_line(point=alt.OverlayMarkDef(size=12))
            .encode(y=_y(log_scale))
            .add_params(brush)
        )
    marks: list[alt.Chart | alt.LayerChart] = [lines]
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
    return _facet(alt.LayerChart(layer=marks), panels)


def state_coloured_curves(
    curves: pl.DataFrame,
    axis: Axis,
    n_states: int,
    *,
    log_scale: bool = False,
    series_order: Sequence[str] = (),
) -> alt.FacetChart:
    """Each run's points coloured by the state it was in (``with_states``: a ``state`` column),
    several runs at once, each a thin grey line; faceted as ``metric_curves``. The published
    package's "metrics vs epochs" plot."""
    panel, panels = _panels(curves, series_order)
    labels, colors = state_domain(max(n_states, 1))
    base = alt.Chart(panel.to_arrow()).encode(x=time_x(axis), y=_y(log_scale))
    brush = alt.selection_interval(encodings=["x"], name=BRUSH)
    runs = base.mark_line(color="#999999", strokeWidth=1, opacity=0.6).encode(detail="run_id:N")
    points = (
        base.mark_circle(size=28, opacity=0.9)
        .encode(
            color=alt.Color(
                "state:N", title="HMM state", scale=alt.Scale(domain=labels, range=colors)
            ),
            tooltip=[*TOOLTIP, "state:N"],
        )
        .add_params(brush)
    )
    return _facet(alt.LayerChart(layer=[runs, points]), panels)
