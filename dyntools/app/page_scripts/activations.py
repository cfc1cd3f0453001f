"""Activations: colorful-dimension heatmaps, mean/std and dead fraction, runs side by side."""

import polars as pl
import streamlit as st

from dyntools import charts, ui
from dyntools.metrics.builtin import DEFAULT_DEAD_THRESHOLD
from dyntools.metrics.histogram import DEFAULT_HISTOGRAM
from dyntools.metrics.kinds import HookKind
from dyntools.views.activations import ACTIVATION_STATS, activation_stats_frame, heatmap_frame
from dyntools.views.layers import activation_functions, network_order
from dyntools.views.time import with_time

page = ui.open_metrics_page("Activations", activations=True)
folder, state, index = page.folder, page.state, page.index
acts = index.filter(
    (index["kind"] == HookKind.ACTIVATION) & index["metric"].is_in(ACTIVATION_STATS)
)
if acts.is_empty():
    st.info(
        f"No activation metrics computed for `{folder}` yet: tick **activation metrics** on the "
        f"Hook points page and press Compute, or run `dyntools compute {folder} --activations` "
        "(runs need a probe.safetensors)."
    )
    st.stop()

available = acts["run_id"].unique().sort().to_list()
main = page.main_runs(available)
runs = ui.shared_multiselect(
    "Runs (side by side)",
    ui.RUNS,
    available,
    key="acts.runs",
    default=len(main),
    preferred=main,
)
layers = network_order(
    acts.filter(acts["run_id"].is_in(runs))["hook_point"].unique().to_list(), page.modules
)
hooks = ui.shared_multiselect(
    "Layers (activation hook points: module outputs)",
    ui.ACTIVATION_HOOKS,
    layers,
    key="acts.hooks",
    default=3,
    # Outputs of activation functions: where units die (a layer before its ReLU never has
    # dead units by this definition).
    preferred=activation_functions(layers, page.modules),
    help="In network order. Dead units show at the outputs of activation functions (ReLU, "
    "GELU, ...), which is what this list starts with.",
)
if not (runs and hooks):
    st.info("Choose at least one run and one layer.")
    st.stop()

with ui.user_errors("reading activations"):
    histograms = ui.load_histograms(state.db, state.version or 0, tuple(runs), tuple(hooks))
    stats = activation_stats_frame(
        ui.load_metrics(
            state.db,
            state.version or 0,
            tuple(runs),
            tuple(hooks),
            ACTIVATION_STATS,
            HookKind.ACTIVATION,
        )
    )

heatmap = heatmap_frame(histograms)
# One axis for both charts: the epoch only where every checkpoint of either states one.
axis = ui.axis_radio(
    pl.concat([heatmap.select("step", "epoch"), stats.select("step", "epoch")]), key="acts.axis"
)
st.subheader("Colorful dimension")
spec = DEFAULT_HISTOGRAM
st.caption(
    f"log1p of the count of |activation| in each bin over the probe batch, per checkpoint "
    f"(default {spec.bins} bins over [{spec.low:g}, {spec.high:g}), fast.ai's choice; the "
    "`>=` row counts the overflow). Change them with `dyntools compute --activations --bins N --range LOW HIGH`."
)
heatmap = with_time(heatmap, axis)
if heatmap.is_empty():
    st.info("No histograms stored for these layers: compute with activation metrics.")
else:
    ui.chart(
        charts.colorful_dimension(heatmap, axis, network_order(hooks, page.modules)),
        key="acts.heatmap",
        name="colorful_dimension",
        data=heatmap,
    )

st.subheader("Mean, standard deviation and dead units")
st.caption(
    f"Dead fraction: share of outputs with |a| < {DEFAULT_DEAD_THRESHOLD:g} (the threshold "
    "stored with each value)."
)
if stats.is_empty():
    st.info("No activation statistics stored for these layers.")
else:
    stats = with_time(stats, axis)
    ui.chart(
        charts.activation_stats(stats, axis, network_order(hooks, page.modules)),
        key="acts.stats",
        name="activation_stats",
        data=stats,
    )
