"""Information plane: HSIC(H, X) against HSIC(H, Y) per layer over training."""

import streamlit as st

from dyntools import charts, ui
from dyntools.metrics.kinds import HookKind
from dyntools.metrics.registry import variant_metrics
from dyntools.views.activations import PROBE_HINT
from dyntools.views.information_plane import (
    describe_params,
    information_frame,
    kernel_notes,
    parameter_choices,
)
from dyntools.views.layers import network_order
from dyntools.views.time import with_time

# Labels short enough for the URL, which carries them (?info.variant=PyGlow).
VARIANTS = {"normalized": "Normalized", "pyglow": "PyGlow"}
VARIANT_HELP = (
    "Normalized: normalized HSIC with Y = the labels (the default). PyGlow: PyGlow's HSIC "
    "(sigma 5, Y = the model's softmax output), which saturates for wide layers."
)

page = ui.open_metrics_page("Information plane", activations=True)
folder, state, index = page.folder, page.state, page.index

variant = st.radio(
    "HSIC",
    list(VARIANTS),
    format_func=VARIANTS.__getitem__,
    key="info.variant",
    bind=ui.URL,
    horizontal=True,
    help=VARIANT_HELP,
)
names = variant_metrics(variant)
have = index.filter((index["kind"] == HookKind.ACTIVATION) & index["metric"].is_in(names))
if have.is_empty():
    st.info(
        f"No {variant} HSIC values computed for `{folder}` yet: tick **activation metrics** on "
        f"the Hook points page and press Compute, or run `dyntools compute {folder} "
        f"--activations` {PROBE_HINT}"
    )
    st.stop()
available = have["run_id"].unique().sort().to_list()
main = page.main_runs(available)
runs = ui.shared_multiselect(
    "Runs", ui.RUNS, available, key="info.runs", default=len(main), preferred=main
)
hooks = ui.shared_multiselect(
    "Layers",
    ui.ACTIVATION_HOOKS,
    network_order(
        have.filter(have["run_id"].is_in(runs))["hook_point"].unique().to_list(), page.modules
    ),
    key="info.hooks",
    default=6,
    help="In network order.",
)
if not (runs and hooks):
    st.info("Choose at least one run and one layer.")
    st.stop()
with ui.user_errors("reading HSIC values"):
    values = ui.load_metrics(
        state.db, state.version or 0, tuple(runs), tuple(hooks), names, HookKind.ACTIVATION
    )
# A run computed with other codings too (dyntools compute --hsic-inputs ...) holds several.
prefer = {
    name: st.selectbox(
        f"{name}: computed more than one way; show",
        options,
        format_func=describe_params,
        key=f"info.params.{name}",
        bind=ui.URL,
    )
    for name, options in parameter_choices(values, variant).items()
}
frame = information_frame(values, variant, prefer)
if frame.is_empty():
    st.info("No HSIC values for this choice.")
    st.stop()
for note in kernel_notes(frame):
    st.caption(note)
axis = ui.axis_radio(frame, key="info.axis")
frame = with_time(frame, axis)
st.caption(f"One trajectory per layer, in training order (larger dots: later {axis.value}s).")
ui.chart(
    charts.information_plane(frame, axis, network_order(hooks, page.modules)),
    key="info.chart",
    name="information_plane",
    data=frame,
)
