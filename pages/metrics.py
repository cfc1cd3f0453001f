"""The metrics page for `streamlit run` from the repository: its script is
dyntools/app/page_scripts/metrics.py (named after the page's URL, so that Streamlit's
announcement of this folder's pages matches the router's)."""

from dyntools.app import run_page

run_page("metrics")
