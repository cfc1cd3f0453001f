"""Charts of a latent-state fit: model selection and the state timeline per run."""

from __future__ import annotations

import altair as alt
import polars as pl

from dyntools.charts.style import AXIS_ROOM, PAGE_WIDTH, time_x
from dyntools.checkpoints.records import Axis
from dyntools.views.colors import category_color
from dyntools.views.latent_states.frames import DRIVER_KINDS, state_domain

FEATURE_LABEL_LIMIT = 280  # px of a feature's name beside its bar

SCORE_LABELS = {"bic": "BIC", "aic": "AIC", "neg_log_likelihood": "-log-likelihood"}


def model_selection(selection: pl.DataFrame, chosen: int) -> alt.LayerChart:
    """BIC, AIC and -log-likelihood (best restart) per number of states; the n used marked."""
    long = (
        selection.with_columns((-pl.col("best_log_likelihood")).alias("neg_log_likelihood"))
        .unpivot(index="n_states", on=list(SCORE_LABELS), variable_name="criterion")
        .with_columns(pl.col("criterion").replace_strict(SCORE_LABELS))
    )
    base = alt.Chart(long.to_arrow()).encode(
        x=alt.X("n_states:O", title="number of states"),
        y=alt.Y("value:Q", title="criterion (lower is better)", scale=alt.Scale(zero=False)),
        color=alt.Color("criterion:N", title=None),
        tooltip=["n_states:O", "criterion:N", alt.Tooltip("value:Q", format=".1f")],
    )
    return _with_rule(base.mark_line(point=True), chosen, height=260)


def heldout_likelihood(selection: pl.DataFrame, chosen: int) -> alt.LayerChart:
    """The held-out runs' log-likelihood per time step for each number of states (higher is
    better): on its own axis, since it is per step while the criteria are totals."""
    scored = selection.select("n_states", "heldout_log_likelihood").drop_nulls()
    line = (
        alt.Chart(scored.to_arrow())
        .mark_line(point=True, color=category_color(2))
        .encode(
            x=alt.X("n_states:O", title="number of states"),
            y=alt.Y(
                "heldout_log_likelihood:Q",
                title="held-out log-likelihood per step",
                scale=alt.Scale(zero=False),
            ),
            tooltip=[
                "n_states:O",
                alt.Tooltip("heldout_log_likelihood:Q", title="per step", format=".3f"),
            ],
        )
    )
    return _with_rule(line, chosen, height=180)


def _with_rule(chart: alt.Chart, chosen: int, *, height: int) -> alt.LayerChart:
    """``chart`` with a dashed rule at the number of states used."""
    rule = (
        alt.Chart(pl.DataFrame({"n_states": [chosen]}).to_arrow())
        .mark_rule(strokeDash=[4, 3], color="black")
        .encode(x="n_states:O")
    )
    layered = alt.layer(chart, rule).properties(height=height, width="container")
    if not isinstance(layered, alt.LayerChart):  # properties() keeps the chart's type
        raise TypeError(f"expected a layer chart, got {type(layered).__name__}")
    return layered


def state_timeline(
    points: pl.DataFrame, intervals: pl.DataFrame, n_states: int, axis: Axis
) -> alt.Chart:
    """One row per run: the decoded state over training (on the fit's axis), as bars coloured
    by stable state colours."""
    labels, colors = state_domain(n_states)
    chart: alt.Chart = (
        alt.Chart(intervals.to_arrow())
        .mark_rect()
        .encode(
            x=time_x(axis, "start"),
            x2="end:Q",
            # Run ids in full: cut to a width, ids of one task look alike ("modular-additio…").
            y=alt.Y("run_id:N", title=None, axis=alt.Axis(labelLimit=0)),
            color=alt.Color("state:N", title="state", scale=alt.Scale(domain=labels, range=colors)),
            tooltip=["run_id:N", "state:N", "start:Q", "end:Q"],
        )
        # A fixed band per run (a number here was squeezed by the app's layout).
        .properties(height=alt.Step(26), width="container")
    )
    return chart


def posterior_areas(frame: pl.DataFrame, n_states: int, axis: Axis) -> alt.Chart:
    """p(state | the whole run) over training, stacked to 1 (``posterior_frame``), in the
    states' colours: where the model is sure and where it hesitates between states."""
    labels, colors = state_domain(n_states)
    chart: alt.Chart = (
        alt.Chart(frame.to_arrow())
        .mark_area(interpolate="step-after")
        .encode(
            x=time_x(axis),
            y=alt.Y("probability:Q", stack="zero", title="posterior probability",
                    scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("state:N", title="state", scale=alt.Scale(domain=labels, range=colors)),
            order=alt.Order("state:N"),
            tooltip=["run_id:N", "step:Q", "epoch:Q", "state:N",
                     alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(height=200, width="container")
    )  # fmt: skip
    return chart


def transition_drivers(frame: pl.DataFrame) -> alt.FacetChart:
    """A transition's driving features (``drivers_frame``) as bars, a row per ranking (each
    with its own features and scale), with the spread of the score over the switches as an
    error bar where the ranking has one."""
    rows = frame.with_columns(
        low=pl.col("score") - pl.col("spread"), high=pl.col("score") + pl.col("spread")
    )
    base = alt.Chart(rows.to_arrow()).encode(
        y=alt.Y("feature:N", sort=alt.EncodingSortField("rank"), title=None,
                axis=alt.Axis(labelLimit=FEATURE_LABEL_LIMIT)),
    )  # fmt: skip
    bars = base.mark_bar(color=category_color(0)).encode(
        x=alt.X("score:Q", title="score"),
        tooltip=["kind:N", "feature:N", alt.Tooltip("score:Q", format="+.3g"),
                 alt.Tooltip("spread:Q", format=".2g")],
    )  # fmt: skip
    spread = (
        base.transform_filter("isFinite(datum.spread)")
        .mark_errorbar(color="black", ticks=True)
        .encode(x="low:Q", x2="high:Q")
    )
    chart: alt.FacetChart = (
        # A facet keeps its panels' width (the app stretches only single views): room for the
        # feature names within the page.
        alt.LayerChart(layer=[bars, spread])
        .properties(height=alt.Step(22), width=PAGE_WIDTH - FEATURE_LABEL_LIMIT - AXIS_ROOM)
        .facet(row=alt.Row("kind:N", title=None, sort=[kind for kind, _ in DRIVER_KINDS],
                           header=alt.Header(labelAngle=0, labelAlign="left", labelOrient="top")))
        .resolve_scale(x="independent", y="independent")
    )  # fmt: skip
    return chart


def correspondence_heatmap(table: pl.DataFrame) -> alt.LayerChart:
    """How the states of fit A (rows) meet those of fit B (columns): each cell's share of the
    row's checkpoints as its shade, the count written in it (``compare.correspondence``)."""
    base = alt.Chart(table.to_arrow()).encode(
        x=alt.X("state_b:N", title="state in fit B"),
        y=alt.Y("state_a:N", title="state in fit A"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share_of_a:Q", title="share of A's state",
                        scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["state_a:N", "state_b:N", "checkpoints:Q",
                 alt.Tooltip("share_of_a:Q", format=".0%")],
    )  # fmt: skip
    counts = base.mark_text(baseline="middle").encode(
        text="checkpoints:Q",
        color=alt.condition(alt.datum.share_of_a > 0.5, alt.value("white"), alt.value("black")),
    )
    chart: alt.LayerChart = alt.LayerChart(layer=[cells, counts]).properties(
        height=alt.Step(34), width=alt.Step(48)
    )
    return chart
