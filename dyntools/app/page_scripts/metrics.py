"""Metrics: metric curves over training for the chosen hook points, runs overlaid, HMM states
behind."""

import polars as pl
import streamlit as st

from dyntools import charts, ui
from dyntools.metrics.kinds import HookKind
from dyntools.views.latent_states.frames import state_intervals
from dyntools.views.layers import network_order
from dyntools.views.metrics import (
    brushed_range,
    comparison_notes,
    curve_frame,
    range_summary,
    rounding_notes,
    time_range,
)
from dyntools.views.time import with_time

# Also what the URL carries (?metrics.kind=activations).
KIND_LABELS = {HookKind.WEIGHT: "weights", HookKind.ACTIVATION: "activations"}

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

with ui.user_errors("reading metrics"):
    curves = curve_frame(
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
axis = ui.axis_radio(curves, key="metrics.axis")
curves = with_time(curves, axis)

intervals, n_states = None, 0
fit_hash, latest = ui.get_text(ui.FIT), False
if not fit_hash:
    with ui.user_errors("reading the stored fits"):
        fit_hash, latest = ui.latest_fit_hash(state.db, tuple(runs)) or "", True
if fit_hash:
    with ui.user_errors("reading the current fit"):
        result = ui.load_fit(state.db, fit_hash)
    if result is None:
        st.caption(f"The current fit {fit_hash[:12]} is not in this folder's database any more.")
    elif result.axis is not axis:
        st.caption(
            f"The fit {fit_hash[:12]} places states on the {result.axis.value} axis: choose "
            f"{result.axis.value} above to see them behind the curves."
        )
    else:
        fitted = [r for r in runs if r in result.run_ids]
        which = "latest stored fit" if latest else "fit"
        choice = st.selectbox(
            f"Background: HMM states of the {which} {fit_hash[:12]} ({result.n_states} "
            "states) for run",
            [*fitted, "(none)"],
            key="metrics.background",
            bind=ui.URL,
        )
        if choice != "(none)":
            intervals = state_intervals(result).filter(pl.col("run_id") == choice)
            n_states = result.n_states
else:
    st.caption("Fit latent states on the Latent states page to colour the background by state.")

if log_scale and (curves["value"] <= 0).any():
    st.caption("Values <= 0 are left out on the log scale.")
    curves = curves.filter(curves["value"] > 0)
selection = ui.chart(
    charts.metric_curves(
        curves,
        axis,
        log_scale=log_scale,
        intervals=intervals,
        n_states=n_states,
        layers=network_order(hooks, page.modules),
    ),
    key="metrics.chart",
    name="metrics",
    on_select=True,
)
brushed = brushed_range(selection.get(charts.BRUSH))
shown = time_range(curves, *brushed) if brushed else curves
unit = axis.value
label = f"{unit}s {brushed[0]:.4g} to {brushed[1]:.4g}" if brushed else f"all {unit}s"
st.caption(f"Summary over {label} (drag across a chart to choose a range of {unit}s)")
st.dataframe(range_summary(shown), hide_index=True, width="stretch")
ui.downloads(shown, "metrics", key="metrics.data")
