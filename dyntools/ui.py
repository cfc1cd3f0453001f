"""Everything the app's pages share: the folder choice in the sidebar and cached loaders.

The only dyntools module that imports streamlit. Shared choices live in plain (non-widget)
session_state keys, so they survive page switches; the folder is also mirrored in the URL's
query parameters so it survives a browser reload.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import streamlit as st

from dyntools.checkpoints import discover_runs
from dyntools.overview import runs_table, scalars_table

FOLDER_KEY = "dyntools.folder"
FOLDER_INPUT_KEY = "dyntools.folder_input"


@dataclass(frozen=True)
class LoadedRuns:
    """The runs found under a folder, as tables, plus problems met while reading them."""

    runs: pl.DataFrame
    scalars: pl.DataFrame
    problems: tuple[str, ...]


def folder_from_argv(argv: Sequence[str]) -> str | None:
    """The ``--folder PATH`` given after ``--`` on the ``streamlit run`` command line."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--folder")
    known, _ = parser.parse_known_args(list(argv))
    folder: str | None = known.folder
    return folder


def init_folder(argv: Sequence[str]) -> None:
    """Pick the starting folder once per session: URL query parameter, then ``--folder``."""
    if FOLDER_KEY in st.session_state:
        return
    start = st.query_params.get("folder") or folder_from_argv(argv)
    st.session_state[FOLDER_KEY] = start or ""


def _apply_folder_input() -> None:
    st.session_state[FOLDER_KEY] = st.session_state[FOLDER_INPUT_KEY].strip()


def folder_sidebar() -> None:
    """The sidebar's folder input; the choice is kept in session state and the URL."""
    st.session_state.setdefault(FOLDER_INPUT_KEY, st.session_state[FOLDER_KEY])
    st.sidebar.text_input(
        "Checkpoint folder",
        key=FOLDER_INPUT_KEY,
        on_change=_apply_folder_input,
        help="A folder holding training runs (searched recursively). Press Enter to load it.",
    )
    folder = st.session_state[FOLDER_KEY]
    if folder:
        st.query_params["folder"] = folder


def current_folder() -> Path | None:
    """The chosen folder if it exists; otherwise shows why not and returns None."""
    text = st.session_state.get(FOLDER_KEY, "")
    if not text:
        st.info("Enter a checkpoint folder in the sidebar to begin (for example `sample_runs`).")
        return None
    folder = Path(text).expanduser()
    if not folder.exists():
        st.error(f"`{folder}` does not exist: check the path in the sidebar.")
        return None
    if not folder.is_dir():
        st.error(f"`{folder}` is a file, not a folder: enter the folder that holds the runs.")
        return None
    return folder


@st.cache_data(ttl=30, show_spinner="Reading runs...")
def load_runs(folder: str) -> LoadedRuns:
    """Read every run below ``folder`` (cached for 30 s so new checkpoints show up)."""
    discovery = discover_runs(Path(folder))
    problems = tuple(problem.message() for problem in discovery.all_problems())
    return LoadedRuns(runs_table(discovery.runs), scalars_table(discovery.runs), problems)
