"""Training steps: the colorful dimension with one column per training step, and mean, std and
dead fraction per step, as recorded in the training loop (``ActivationStats``,
``dyntools train --step-stats``, the callbacks); runs side by side, with a warning per rising
crash (``dyntools crashes``)."""

import streamlit as st

from dyntools import charts, ui
from dyntools.checkpoints.records import Axis
from dyntools.text import markdown_literal
from dyntools.views.steps import (
    MAX_COLUMNS,
    run_crash_warnings,
    step_heatmap_frame,
    step_stats_curves,
)
from dyntools.views.time import with_time

st.title("Training steps")
ui.load_state()
folder = ui.current_folder()
if folder is None:
    st.stop()
with ui.user_errors("reading the runs"):
    loaded = ui.load_runs(str(folder))
    stats = {
        run_id: ui.load_step_stats(path, ui.step_stats_stamp(path))
        for run_id, path in loaded.paths.items()
    }
stats = {run_id: frame for run_id, frame in stats.items() if not frame.is_empty()}
if not stats:
    st.info(
        f"No run in `{folder}` recorded per-step statistics. Record them while training: "
        "`dyntools train TASK --step-stats`, `ActivationStats(model, run_dir)` in your loop, or "
        "the Trainer and Lightning callbacks (docs/training.md)."
    )
    st.stop()
ui.remember(folder)

available = sorted(stats)
runs = ui.shared_multiselect(
    "Runs (side by side)", ui.RUNS, available, key="steps.runs", default=len(available)
)
modules = sorted({m for run in runs for m in stats[run]["module"].unique().to_list()})
layers = ui.shared_multiselect(
    "Layers (recorded modules)", ui.ACTIVATION_HOOKS, modules, key="steps.layers", default=3
)
if not (runs and layers):
    st.info("Choose at least one run and one layer.")
    st.stop()
for run in runs:  # fast.ai: "if you see this rising crash at all, restart training"
    for warning in run_crash_warnings(run, stats[run]):
        st.warning(markdown_literal(warning), icon=":material/warning:")
chosen = {run: stats[run].filter(stats[run]["module"].is_in(layers)) for run in runs}
steps = max(frame["step"].n_unique() for frame in chosen.values())

st.subheader("Colorful dimension, per training step")
st.caption(
    "log1p of the count of |activation| in each bin over each training batch (fast.ai's "
    "colorful dimension, as recorded in the loop)"
    + (
        f"; {steps} steps pooled into at most {MAX_COLUMNS} columns (counts summed)."
        if steps > MAX_COLUMNS
        else "."
    )
)
heatmap = with_time(step_heatmap_frame(chosen), Axis.STEP)
ui.chart(
    charts.colorful_dimension(heatmap, Axis.STEP, layers),
    key="steps.heatmap",
    name="colorful_dimension_steps",
    data=heatmap,
)
st.subheader("Mean, standard deviation and dead units, per training step")
curves = with_time(step_stats_curves(chosen), Axis.STEP)
ui.chart(
    charts.activation_stats(curves, Axis.STEP, layers),
    key="steps.stats",
    name="activation_stats_steps",
    data=curves,
)
