"""Metrics: metric curves over training for the chosen hook points, runs overlaid, HMM states
behind."""

import polars as pl
import streamlit as st

from dyntools import charts, ui
from dyntools.metrics.kinds import HookKind
from dyntools.views.latent_states.frames import state_intervals, state_points
from dyntools.views.layers import network_order
from dyntools.views.metrics import (
    brushed_range,
    comparison_notes,
    curve_frame,
    panel_order,
    range_summary,
    rounding_notes,
    smoothed,
    tensor_curve_frame,
    time_range,
    with_states,
)
from dyntools.views.time import with_time

# Also what the URL carries (?metrics.kind=activations).
KIND_LABELS = {HookKind.WEIGHT: "weights", HookKind.ACTIVATION: "activations"}
SCOPES = {"hook points": curve_frame, "each tensor": tensor_curve_frame}
RUN, STATE = "by run", "by each run's state"
NO_BACKGROUND = "(none)"

page = ui.open_metrics_page("Metrics")
folder, state, index = page.folder, page.state, page.index
if index.is_empty():
    ui.require_metrics(folder, state.__class__(state.path, None, ""))

kinds = [k for k in HookKind if k in set(index["kind"])]
kind = st.radio(
    "Hook points of",
    kinds,
    format_func=KIND_LABELS.__getitem__,
    horizontal=True,
    key="metrics.kind",
    bind=ui.URL,
    help="Weights: the checkpoint's tensors. Activations: module outputs on the probe batch.",
)
index = index.filter(index["kind"] == kind)
left, right = st.columns(2)
with left:
    available = index["run_id"].unique().sort().to_list()
    main = page.main_runs(available)
    runs = ui.shared_multiselect(
        "Runs", ui.RUNS, available, key="metrics.runs", default=len(main), preferred=main
    )
    hooks_available = index.filter(index["run_id"].is_in(runs))["hook_point"].unique()
    hooks = ui.shared_multiselect(
        "Hook points",
        ui.HOOKS_OF_KIND[kind],
        network_order(hooks_available.to_list(), page.modules),
        key="metrics.hooks",
        default=2,
    )
with right:
    names_available = (
        index.filter(index["run_id"].is_in(runs) & index["hook_point"].is_in(hooks))["metric"]
        .unique()
        .sort()
        .to_list()
    )
    metrics = ui.shared_multiselect(
        "Metrics",
        ui.METRICS,
        names_available,
        key="metrics.metrics",
        default=2,
        preferred=("l2", "spectral"),
    )
    log_scale = st.toggle("Log scale", key="metrics.log", bind=ui.URL)

if not (runs and hooks and metrics):
    st.info("Choose at least one run, hook point and metric.")
    st.stop()

left, middle, right = st.columns(3)
scope = left.radio(
    "Values of",
    list(SCOPES),
    horizontal=True,
    key="metrics.scope",
    bind=ui.URL,
    help="Each hook point's value (the mean over its matrices), or every tensor's own: each "
    "head of a split attention matrix, each part of a fused Q/K/V tensor.",
)
smoothing = middle.slider(
    "Smoothing",
    0.0,
    0.99,
    0.0,
    0.01,
    key="metrics.smoothing",
    bind=ui.URL,
    help="TensorBoard's: an exponential moving average over the earlier points, debiased; the "
    "raw curve stays faint behind. Summaries and downloads hold the raw values.",
)
with ui.user_errors("reading metrics"):
    curves = SCOPES[scope](
        ui.load_metrics(
            state.db, state.version or 0, tuple(runs), tuple(hooks), tuple(metrics), kind
        )
    )
if curves.is_empty():
    st.info(
        "No values for this choice: compute these metrics on the Hook points page "
        f"(or `dyntools compute {folder} --select ... --metrics ...`)."
    )
    st.stop()
first_steps = ui.load_first_steps(state.db, state.version or 0)
with ui.user_errors("reading the recorded problems"):
    errors = ui.load_errors(state.db, state.version or 0)
for note in [
    *comparison_notes(metrics, {run: first_steps[run] for run in runs if run in first_steps}),
    *rounding_notes(errors, runs, metrics),
]:
    st.caption(note)
with right:
    axis = ui.axis_radio(curves, key="metrics.axis")
curves = with_time(curves, axis)

result, which = None, ""
fit_hash, latest = ui.get_text(ui.FIT), False
if not fit_hash:
    with ui.user_errors("reading the stored fits"):
        fit_hash, latest = ui.latest_fit_hash(state.db, tuple(runs)) or "", True
if fit_hash:
    with ui.user_errors("reading the current fit"):
        result = ui.load_fit(state.db, fit_hash)
    which = f"{'latest stored fit' if latest else 'fit'} {fit_hash[:12]}"
    if result is None:
        st.caption(f"The current fit {fit_hash[:12]} is not in this folder's database any more.")
    elif result.axis is not axis:
        st.caption(
            f"The {which} places states on the {result.axis.value} axis: choose "
            f"{result.axis.value} above to see them with the curves."
        )
        result = None
else:
    st.caption("Fit latent states on the Latent states page to see the curves by state.")

if log_scale and (curves["value"] <= 0).any():
    st.caption("Values <= 0 are left out on the log scale.")
    curves = curves.filter(curves["value"] > 0)
series_order = panel_order(curves, network_order(hooks, page.modules))
drawn = smoothed(curves, smoothing) if smoothing else curves
colour = RUN
if result is not None:
    colour = st.radio(
        f"Colour ({which}, {result.n_states} states)",
        [RUN, STATE],
        horizontal=True,
        key="metrics.colour",
        bind=ui.URL,
        help="By run, with one run's states behind the curves; or each run's points by the "
        "state that run was in (the runs the fit decoded).",
    )
if result is not None and colour == STATE:
    spec = charts.state_coloured_curves(
        with_states(drawn, state_points(result)),
        axis,
        result.n_states,
        log_scale=log_scale,
        series_order=series_order,
    )
else:
    intervals, n_states = None, 0
    if result is not None:
        fitted = [r for r in runs if r in result.run_ids]
        choice = st.selectbox(
            "States behind the curves: those of run",
            [*fitted, NO_BACKGROUND],
            key="metrics.background",
            bind=ui.URL,
        )
        if choice != NO_BACKGROUND:
            intervals = state_intervals(result).filter(pl.col("run_id") == choice)
            n_states = result.n_states
    spec = charts.metric_curves(
        drawn,
        axis,
        log_scale=log_scale,
        intervals=intervals,
        n_states=n_states,
        series_order=series_order,
    )
selection = ui.chart(spec, key="metrics.chart", name="metrics", on_select=True)
brushed = brushed_range(selection.get(charts.BRUSH))
shown = time_range(curves, *brushed) if brushed else curves
unit = axis.value
label = f"{unit}s {brushed[0]:.4g} to {brushed[1]:.4g}" if brushed else f"all {unit}s"
st.caption(f"Summary over {label} (drag across a chart to choose a range of {unit}s)")
st.dataframe(range_summary(shown), hide_index=True, width="stretch")
ui.downloads(shown, "metrics", key="metrics.data")
