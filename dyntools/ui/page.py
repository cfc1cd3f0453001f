"""The prologue every page that reads computed metrics shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from dyntools.ui.loaders import StoreState, load_metric_index, store_state
from dyntools.ui.state import current_folder, load_state, remember
from dyntools.ui.widgets import require_metrics, user_errors


@dataclass(frozen=True)
class MetricsPage:
    """What a metrics page starts from: the folder, its database and what it holds."""

    folder: Path
    state: StoreState
    index: pl.DataFrame


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
        index = load_metric_index(state.db, state.version or 0)
    remember(folder)
    return MetricsPage(folder, state, index)
