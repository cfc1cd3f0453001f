"""The app's router: page config, shared selections, sidebar and navigation.

Streamlit runs this script (``dyntools app FOLDER`` serves it; the repository's
``streamlit_app.py`` calls ``run``). Page URLs, as ``PAGES`` lists them: / (Folder),
/hook-points, /metrics, /latent-states, /compare-fits, /activations, /steps (Training steps),
/information-plane. ``st.session_state["dyntools.start_page"]`` (a url path) picks the page a
new session opens on: tests use it to render one page through this router.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from dyntools import ui
from dyntools.app import PAGES, ROUTING

START_PAGE_KEY = "dyntools.start_page"


def run(argv: Sequence[str] = (), pages_folder: Path | None = None) -> None:
    """One run of the router (``argv``: the arguments after ``--`` of ``streamlit run``).

    ``pages_folder``: a folder of one file per page named by its URL (the repository's
    ``pages/``, whose files run the same scripts); by default the package's page scripts.
    """
    st.set_page_config(page_title="dyntools", layout="wide")
    ui.load_state(argv)
    start = st.session_state.get(START_PAGE_KEY, "folder")
    navigation = st.navigation(
        [
            st.Page(
                str(page.path if pages_folder is None else pages_folder / f"{page.url_path}.py"),
                title=page.title,
                icon=page.icon,
                url_path=page.url_path,
                default=page.url_path == start,
            )
            for page in PAGES
        ]
    )
    ui.mirror_state()
    ui.folder_sidebar()
    ui.follow_toggle()
    routing = ROUTING.set(True)
    try:
        navigation.run()
    finally:
        ROUTING.reset(routing)


def run_page(url_path: str, page_file: str) -> None:
    """Run one page's script here (the development ``pages/`` files do, one line each, giving
    their own path).

    Run by the router, the page script runs. Run by Streamlit itself (until some session has
    called ``st.navigation``, Streamlit runs the file of ``pages/`` a URL names, without the
    main script), it hands over to the router, which then runs this page again inside the app:
    sidebar, layout and shared selections as everywhere.

    Not under the name ``__main__``: that would make the script the main module for the
    worker processes of the HMM fits, which would then run the page.
    """
    if not ROUTING.get():
        run(sys.argv[1:], pages_folder=Path(page_file).resolve().parent)
        return
    spec = next(page for page in PAGES if page.url_path == url_path)
    runpy.run_path(str(spec.path), run_name=f"dyntools_page_{spec.script}")


if __name__ == "__main__":
    run(sys.argv[1:])
