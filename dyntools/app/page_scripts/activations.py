"""Activations: colorful-dimension heatmaps, mean/std and dead fraction, runs side by side."""

import polars as pl
import streamlit as st

from dyntools import charts, ui
from dyntools.metrics.builtin import DEFAULT_DEAD_THRESHOLD
from dyntools.metrics.histogram import DEFAULT_HISTOGRAM, MAX_BINS
from dyntools.metrics.kinds import HookKind
from dyntools.pipeline.options import configured_backend
from dyntools.views.activations import (
    ACTIVATION_STATS,
    PROBE_HINT,
    ComputedBins,
    activation_stats_frame,
    heatmap_frame,
    histogram_params,
)
from dyntools.views.layers import activation_functions, network_order
from dyntools.views.time import with_time

COMPUTED_KEY = "acts.computed"  # a ComputedBins, kept for the rerun after a compute

page = ui.open_metrics_page("Activations", activations=True)
folder, state, index = page.folder, page.state, page.index
acts = index.filter(
    (index["kind"] == HookKind.ACTIVATION) & index["metric"].is_in(ACTIVATION_STATS)
)
if acts.is_empty():
    st.info(
        f"No activation metrics computed for `{folder}` yet: tick **activation metrics** on the "
        f"Hook points page and press Compute, or run `dyntools compute {folder} --activations` "
        f"{PROBE_HINT}"
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

stored_bins = histogram_params(histograms)
# What the last compute of other bins did (set before its rerun): show its bins.
just_computed: ComputedBins | None = st.session_state.pop(COMPUTED_KEY, None)
if just_computed is not None and just_computed.params in stored_bins:
    st.session_state["acts.bins"] = just_computed.params
if len(stored_bins) > 1:
    shown_bins = st.selectbox(
        "Histogram bins (computed more than one way)",
        list(stored_bins),
        format_func=stored_bins.__getitem__,
        key="acts.bins",
        bind=ui.URL,
    )
    histograms = histograms.filter(pl.col("params") == shown_bins)
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
    "`>=` row counts the overflow)."
)
with st.expander("Other bins", expanded=just_computed is not None):
    with st.form("acts.bins_form", border=False):
        a, b, c = st.columns(3)
        bins = a.number_input("Bins", 1, MAX_BINS, spec.bins, key="acts.new_bins")
        low = b.number_input("From |a| =", value=spec.low, key="acts.new_low")
        high = c.number_input("To |a| =", value=spec.high, key="acts.new_high")
        asked = st.form_submit_button(
            "Compute these histograms",
            help="For the runs and layers shown; checkpoints already done with these bins are "
            "skipped. The same as `dyntools compute --activations --metrics histogram --bins N "
            "--range LOW HIGH`.",
        )
    backend = configured_backend()
    st.caption(backend.description)
    if asked:
        # Imported here: the compute imports torch (about 1.3 s), which only a compute needs.
        from dyntools.pipeline import ComputeOptions, compute

        wanted = {"bins": int(bins), "low": float(low), "high": float(high)}
        with st.spinner("Computing histograms..."), ui.user_errors("compute"):
            options = backend.apply(
                ComputeOptions(
                    metrics=("histogram",),
                    activations=True,
                    activation_select=tuple(hooks),
                    params={"histogram": wanted},
                    runs=tuple(runs),
                    workers=1,
                )
            )
            summary = compute(folder, options, db=state.path)
        # The rerun reads the new histograms; the page then shows them and this.
        st.session_state[COMPUTED_KEY] = ComputedBins(
            options.params_key("histogram"),
            f"Computed {summary.computed} checkpoints ({summary.skipped} already had these bins).",
            tuple(f"`{failure.file}`: {failure.reason}" for failure in summary.failed),
        )
        st.rerun()
    if just_computed is not None:
        st.success(just_computed.message)
        for failure in just_computed.failures:
            st.warning(failure)
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
