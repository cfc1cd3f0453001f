"""Runs: the runs found in the chosen folder and their training curves."""

import streamlit as st

from dyntools import charts, ui

st.title("Runs")
folder = ui.current_folder()
if folder is None:
    st.stop()

loaded = ui.load_runs(str(folder))
if loaded.problems:
    with st.expander(f"{len(loaded.problems)} problems found while reading `{folder}`"):
        for problem in loaded.problems:
            st.warning(problem)
if loaded.runs.is_empty():
    st.warning(
        f"No runs found in `{folder}`: expected dyntools runs (`run.json` + "
        "`epoch_*.safetensors`), Hugging Face `checkpoint-N/`, Lightning `.ckpt`, torch `.pt` "
        "or numbered `.safetensors` files. Train one with `dyntools train modular-addition --seed 0 --out DIR`."
    )
    st.stop()

st.caption(f"{loaded.runs.height} runs in `{folder}`")
st.dataframe(loaded.runs, hide_index=True, width="stretch")

tasks = loaded.runs["task"].unique().sort().to_list()
task = st.selectbox("Task", tasks, key="runs.task")
scalars = loaded.scalars.filter(loaded.scalars["task"] == task)
log_loss = st.toggle("Log-scale loss", value=True, key="runs.log_loss")
st.altair_chart(charts.training_curves(scalars, log_loss=log_loss), width="stretch")
