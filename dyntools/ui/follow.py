"""Following a folder while it grows (``dyntools watch`` computing into it, or a training run
with a callback): a sidebar toggle, off by default; while on, the page is shown again as soon
as the folder's database holds new results.

A fragment checks the database's data version (one small query) and the size and time of the
runs' per-step statistics files every few seconds, and reruns the whole page only when one of
them changed: the user's selections are widget state and survive the rerun; nothing is redrawn
while nothing changed. The Latent states page is the exception: its fit stays on the data it
was made on until the user asks for a refit (``followed_fit_version``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import streamlit as st

from dyntools.hmm import FitConfig
from dyntools.ui.loaders import fit_in_session, load_runs, step_stats_stamp, store_state
from dyntools.ui.state import FOLDER, get_text

FOLLOW_KEY: Final = "dyntools.follow"
VERSION_KEY: Final = "dyntools.follow_version"
FOLLOW_EVERY_S: Final = 2.0
FIT_VERSION_KEY: Final = "dyntools.follow_fit_version"


def follow_toggle() -> None:
    """The sidebar's "Follow this folder" toggle, and the check it turns on."""
    on = st.sidebar.toggle(
        "Follow this folder",
        key=FOLLOW_KEY,
        help=f"Show new results as they arrive (checked every {FOLLOW_EVERY_S:g} s): run "
        "`dyntools watch FOLDER` beside the app, or train with a dyntools callback and compute.",
    )
    if on:
        with st.sidebar:
            _check()
    else:
        st.session_state.pop(VERSION_KEY, None)


@st.fragment(run_every=FOLLOW_EVERY_S)
def _check() -> None:
    text = get_text(FOLDER)
    folder = Path(text).expanduser() if text else None
    if folder is None or not folder.is_dir():
        return
    version = store_state(folder).version
    steps = tuple(step_stats_stamp(path) for path in load_runs(str(folder)).paths.values())
    seen = st.session_state.get(VERSION_KEY)
    st.session_state[VERSION_KEY] = (version, steps)
    recorded = sum(size for stamp in steps for _, size, _ in stamp)
    st.caption(
        f"Following: results version {version if version is not None else 'none'}"
        + (f", {recorded / 1e3:,.0f} kB of per-step statistics" if recorded else "")
    )
    if seen is not None and (version, steps) != seen:
        load_runs.clear()  # new checkpoints too, not only new values
        st.rerun(scope="app")


def followed_fit_version(version: int, db: str, config: FitConfig) -> int:
    """The data version the Latent states page fits on: the current one, except while the
    folder is followed and this session already holds the fit of ``config`` on the data it
    showed before; then that one, with a button that refits on the new data."""
    pinned = st.session_state.get(FIT_VERSION_KEY)
    use = version
    following = bool(st.session_state.get(FOLLOW_KEY))
    if following and pinned not in (None, version) and fit_in_session(db, pinned, config):
        use = pinned
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.info(
            "New results arrived since this fit was made: it still shows the data it was "
            "fitted on.",
            icon=":material/update:",
        )
        if right.button("Refit on the new data", key="latent.refit_new"):
            use = version
    st.session_state[FIT_VERSION_KEY] = use
    return use
