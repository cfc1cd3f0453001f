"""Shared selections: folder, runs, hook points, metrics and the current fit.

They live in plain (non-widget) session_state keys, so they survive page switches, and are
mirrored into the URL's query parameters, so a reload (or a shared link) restores them.
Navigation drops query parameters, so every script run writes them back.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import streamlit as st

from dyntools.checkpoints.records import AUTO_AXIS, Axis
from dyntools.metrics.kinds import HookKind
from dyntools.ui.recent import read_recent, remember_folder
from dyntools.views.shared_selections import decode_list, encode_list, reconcile
from dyntools.views.time import axes_of, frame_axis


@dataclass(frozen=True)
class Shared:
    """One shared selection: its session_state key, query parameter and whether it is a list."""

    key: str
    param: str
    is_list: bool


FOLDER = Shared("dyntools.folder", "folder", False)
RUNS = Shared("dyntools.runs", "runs", True)
# Weight and activation hook points are chosen apart: a name such as fc1 can be both.
WEIGHT_HOOKS = Shared("dyntools.weight_hooks", "weights", True)
ACTIVATION_HOOKS = Shared("dyntools.activation_hooks", "activations", True)
METRICS = Shared("dyntools.metrics", "metrics", True)
FIT = Shared("dyntools.fit", "fit", False)  # config hash of the current HMM fit
AXIS = Shared("dyntools.axis", "axis", False)  # step or epoch; empty: the epoch where known
SHARED = (FOLDER, RUNS, WEIGHT_HOOKS, ACTIVATION_HOOKS, METRICS, FIT, AXIS)
HOOKS_OF_KIND = {HookKind.WEIGHT: WEIGHT_HOOKS, HookKind.ACTIVATION: ACTIVATION_HOOKS}

# ``bind=URL``: a widget whose value changes what a page shows keeps it in the URL (its key is
# the query parameter), so a reload or a shared link shows the same view.
URL: Final = "query-params"

FOLDER_INPUT_KEY = "dyntools.folder_input"
RECENT_KEY = "dyntools.recent_choice"


def folder_from_argv(argv: Sequence[str]) -> str | None:
    """The ``--folder PATH`` given after ``--`` on the ``streamlit run`` command line."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--folder")
    known, _ = parser.parse_known_args(list(argv))
    folder: str | None = known.folder
    return folder


def init_state(argv: Sequence[str] = ()) -> None:
    """Fill the shared selections once per session (URL first, then ``--folder``), then write
    them back into the URL (navigation between pages drops query parameters)."""
    load_state(argv)
    mirror_state()


def load_state(argv: Sequence[str] = ()) -> None:
    """Fill the shared selections once per session: URL first, then ``--folder``."""
    for shared in SHARED:
        if shared.key in st.session_state:
            continue
        text = st.query_params.get(shared.param)
        if shared is FOLDER and not text:
            text = folder_from_argv(argv)
        st.session_state[shared.key] = decode_list(text) if shared.is_list else (text or "")


def mirror_state() -> None:
    """Write the shared selections into the URL (the router, on every run: navigation
    between pages drops query parameters; pages only ``load_state``)."""
    for shared in SHARED:
        _mirror(shared)


def _mirror(shared: Shared) -> None:
    value = st.session_state.get(shared.key)
    text = encode_list(value or []) if shared.is_list else str(value or "")
    if text:
        st.query_params[shared.param] = text
    elif shared.param in st.query_params:
        del st.query_params[shared.param]


def start_with(key: str, value: object) -> None:
    """The first value of a URL-bound widget (``bind=URL``), unless the URL (a reload, a shared
    link) or an earlier run already gave it one."""
    if key not in st.session_state and key not in st.query_params:
        st.session_state[key] = value


def get_list(shared: Shared) -> list[str]:
    value = st.session_state.get(shared.key) or []
    return list(value)


def get_text(shared: Shared) -> str:
    return str(st.session_state.get(shared.key) or "")


def set_shared(shared: Shared, value: str | Sequence[str]) -> None:
    """Change a shared selection (session state and URL)."""
    st.session_state[shared.key] = list(value) if shared.is_list else str(value)
    _mirror(shared)


def shared_multiselect(
    label: str,
    shared: Shared,
    options: Sequence[str],
    *,
    key: str,
    default: int = 4,
    preferred: Sequence[str] = (),
    help: str | None = None,
    sidebar: bool = False,
) -> list[str]:
    """A multiselect bound to a shared selection: starts from it, writes every change back."""
    current = st.session_state.get(key)
    if current is None or not set(current) <= set(options):
        st.session_state[key] = reconcile(
            get_list(shared), options, default=default, preferred=preferred
        )

    def changed() -> None:
        # Keep the choices this page does not offer (other runs' names) too.
        others = [name for name in get_list(shared) if name not in options]
        set_shared(shared, [*st.session_state[key], *others])

    where = st.sidebar if sidebar else st
    chosen: list[str] = where.multiselect(
        label, list(options), key=key, on_change=changed, help=help
    )
    return chosen


def axis_radio(frame: pl.DataFrame, *, key: str) -> Axis:
    """The time axis to draw ``frame`` (``step`` and ``epoch`` columns) on, bound to the shared
    choice: step or epoch when every row states an epoch, else the step, said in a caption."""
    available = axes_of(frame)
    chosen = frame_axis(frame, get_text(AXIS) or AUTO_AXIS)
    if len(available) == 1:
        st.caption(f"Time axis: {chosen.value} (not every checkpoint shown states an epoch).")
        return chosen
    st.session_state[key] = chosen.value

    def changed() -> None:
        set_shared(AXIS, st.session_state[key])

    value: str = st.radio(
        "Time axis",
        [axis.value for axis in available],
        key=key,
        on_change=changed,
        horizontal=True,
        help="Optimizer steps, or epochs as the training source recorded them (fractional "
        "where a run saved mid-epoch).",
    )
    return Axis(value)


def _apply_folder_input() -> None:
    choose_folder(st.session_state[FOLDER_INPUT_KEY].strip())


def _apply_recent() -> None:
    choice = st.session_state.get(RECENT_KEY)
    if choice:
        choose_folder(choice)
        st.session_state[FOLDER_INPUT_KEY] = choice


def choose_folder(folder: str) -> None:
    """Switch to another folder; the fit of the old folder no longer applies."""
    if folder != get_text(FOLDER):
        set_shared(FIT, "")
    set_shared(FOLDER, folder)


def folder_sidebar() -> None:
    """The sidebar's folder input and recently used folders."""
    st.session_state.setdefault(FOLDER_INPUT_KEY, get_text(FOLDER))
    st.sidebar.text_input(
        "Checkpoint folder",
        key=FOLDER_INPUT_KEY,
        on_change=_apply_folder_input,
        help="A folder holding training runs (searched recursively). Press Enter to load it.",
    )
    recent = [f for f in read_recent() if f != get_text(FOLDER)]
    if recent:
        st.sidebar.selectbox(
            "Recent folders",
            recent,
            index=None,
            key=RECENT_KEY,
            on_change=_apply_recent,
            placeholder="Open a recent folder",
        )


def current_folder() -> Path | None:
    """The chosen folder if it exists; otherwise shows why not. (It becomes a recent folder
    once a page found runs or results in it: ``remember``.)"""
    text = get_text(FOLDER)
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


def remember(folder: Path) -> None:
    """Add ``folder`` to the recent folders (once per session): called by a page that found
    runs or computed results there, so that empty or failing folders stay out of the list."""
    text = str(folder)
    if st.session_state.get("dyntools.remembered") != text:
        remember_folder(text)
        st.session_state["dyntools.remembered"] = text
