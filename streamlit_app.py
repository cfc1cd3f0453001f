"""dyntools app entry point: shared sidebar and navigation. Run with `make app`, or
`streamlit run streamlit_app.py -- --folder PATH`."""

import sys

import streamlit as st

from dyntools import ui

st.set_page_config(page_title="dyntools", layout="wide")
ui.init_folder(sys.argv[1:])
navigation = st.navigation([st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:")])
ui.folder_sidebar()
navigation.run()
