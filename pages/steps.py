"""The steps page for `streamlit run` from the repository: its script is
dyntools/app/page_scripts/steps.py.
Named after the page's URL: a link opened on a server no session has routed yet runs this
file by itself, and it hands over to the router."""

from dyntools.app.main import run_page

if __name__ == "__main__":  # not in the worker processes that re-import the main module
    run_page("steps", __file__)
