"""The prologue every page that reads computed metrics shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from dyntools.ui.loaders import (
    StoreState,
    load_metric_index,
    load_modules,
    load_run_tasks,
    store_state,
)
from dyntools.ui.state import RUNS, current_folder, get_list, load_state, remember
from dyntools.ui.widgets import require_metrics, user_errors
from dyntools.views.folder import main_task, runs_of_task


@dataclass(frozen=True)
class MetricsPage:
    """What a metrics page starts from: the folder, its database and what it holds."""

    folder: Path
    state: StoreState
    index: pl.DataFrame
    tasks: dict[str, str]  # run id -> task
    modules: pl.DataFrame  # the rebuilt models' modules in network order (``layers`` views)

    def main_runs(self, runs: Sequence[str]) -> list[str]:
        """The runs among ``runs`` a page starts with: those of one task (the task of the runs
        chosen on other pages, else the task with most runs)."""
        offered = {run: self.tasks.get(run, "") for run in runs}
        return runs_of_task(offered, main_task(offered, get_list(RUNS)))


def open_metrics_page(title: str, *, activations: bool = False) -> MetricsPage:
    """Title, shared selections, folder and database; stops the page with what to do next when
    there is no folder or nothing computed yet."""
    st.title(title)
    load_state()
    folder = current_folder()
    if folder is None:
        st.stop()
    with user_errors("reading the database"):
        state = store_state(folder)
        require_metrics(folder, state, activations=activations)
        version = state.version or 0
        index = load_metric_index(state.db, version)
        tasks = load_run_tasks(state.db, version)
        modules = load_modules(state.db, version)
    remember(folder)
    return MetricsPage(folder, state, index, tasks, modules)
