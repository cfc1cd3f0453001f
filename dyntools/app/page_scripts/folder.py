"""Folder: the runs found in the chosen folder, their problems and training curves."""

import streamlit as st

from dyntools import charts, ui
from dyntools.views.folder import main_task, runs_of_task
from dyntools.views.time import with_time

st.title("Folder")
ui.load_state()
folder = ui.current_folder()
if folder is None:
    st.stop()

with ui.user_errors(f"reading {folder}"):
    loaded = ui.load_runs(str(folder))
    state = ui.store_state(folder)
if loaded.runs.is_empty():
    st.warning(
        f"No runs found in `{folder}`: expected dyntools runs (`run.json` + "
        "`epoch_*.safetensors`), Hugging Face `checkpoint-N/`, Lightning `.ckpt`, torch `.pt` "
        "or numbered `.safetensors` files. Train one with `dyntools train modular-addition --seed 0 --out DIR`."
    )
# With no run at all, "no checkpoints found" is what the warning above says: not twice.
problems = [
    p for p in loaded.problems if not (loaded.runs.is_empty() and ": no checkpoints found;" in p)
]
if problems:
    with st.expander(f"{len(problems)} problems found while reading `{folder}`"):
        for problem in problems:
            st.warning(problem)
if loaded.runs.is_empty():
    st.stop()
ui.remember(folder)

computed = "no metrics computed yet" if not state.ready else f"database `{state.path}`"
st.caption(f"{loaded.runs.height} runs in `{folder}`; {computed}")
if state.note:
    st.info(state.note)
st.dataframe(loaded.runs, hide_index=True, width="stretch")
ui.downloads(loaded.runs, "runs", key="folder.runs")

task_of_run = dict(loaded.runs.select("run_id", "task").iter_rows())
tasks = loaded.runs["task"].unique().sort().to_list()
# The task box follows the runs chosen on any page; changing it chooses that task's runs.
st.session_state["folder.task"] = main_task(task_of_run, ui.get_list(ui.RUNS))


def _choose_task() -> None:
    ui.set_shared(ui.RUNS, runs_of_task(task_of_run, st.session_state["folder.task"]))


task = st.selectbox("Task", tasks, key="folder.task", on_change=_choose_task)
run_ids = runs_of_task(task_of_run, task)
runs = ui.shared_multiselect("Runs", ui.RUNS, run_ids, key="folder.runs_pick", default=len(run_ids))
scalars = loaded.scalars.filter(loaded.scalars["run_id"].is_in(runs))
if scalars.is_empty():
    st.info("These runs logged no training scalars (losses, accuracies) in their checkpoints.")
else:
    left, right = st.columns(2)
    with left:
        axis = ui.axis_radio(scalars, key="folder.axis")
    log_loss = right.toggle("Log-scale loss", value=True, key="folder.log_loss", bind=ui.URL)
    scalars = with_time(scalars, axis)
    curves = charts.training_curves(scalars, axis, log_loss=log_loss)
    if curves is None:
        st.info(
            "These runs logged no loss or accuracy (train_loss, val_loss, train_acc, val_acc); "
            "their other scalars are in the download."
        )
        ui.downloads(scalars, "training", key="folder.curves")
    else:
        ui.chart(curves, key="folder.curves", name="training", data=scalars)
if not state.ready:
    st.info(
        f"Next: open **Hook points** to choose layers and metrics and compute them, or run "
        f"`dyntools compute {folder}` in a terminal."
    )
