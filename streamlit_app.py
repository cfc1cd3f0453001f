"""dyntools app entry point: shared sidebar and navigation. Run with `make app`, or
`streamlit run streamlit_app.py -- --folder PATH`.

Page URLs: / (Folder), /hook-points, /metrics, /latent-states, /activations,
/information-plane. ``st.session_state["dyntools.start_page"]`` (a url path) picks the page a
new session opens on: tests use it to render one page through this router (AppTest's
switch_page loses the sidebar with st.navigation).
"""

import sys

import streamlit as st

from dyntools import ui

START_PAGE_KEY = "dyntools.start_page"
PAGES = (
    ("pages/folder.py", "Folder", ":material/folder_open:", "folder"),
    ("pages/hook_points.py", "Hook points", ":material/account_tree:", "hook-points"),
    ("pages/metrics.py", "Metrics", ":material/show_chart:", "metrics"),
    ("pages/latent_states.py", "Latent states", ":material/hub:", "latent-states"),
    ("pages/activations.py", "Activations", ":material/grid_on:", "activations"),
    (
        "pages/information_plane.py",
        "Information plane",
        ":material/scatter_plot:",
        "information-plane",
    ),
)

st.set_page_config(page_title="dyntools", layout="wide")
ui.load_state(sys.argv[1:])
start = st.session_state.get(START_PAGE_KEY, "folder")
navigation = st.navigation(
    [
        st.Page(path, title=title, icon=icon, url_path=url, default=url == start)
        for path, title, icon, url in PAGES
    ]
)
ui.mirror_state()
ui.folder_sidebar()
navigation.run()
