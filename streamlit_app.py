"""dyntools app, development entry: `streamlit run streamlit_app.py -- --folder PATH` (or
`make app`). The router and the page scripts live in `dyntools.app` (which `dyntools app FOLDER`
serves from an installed dyntools); here the router points at `pages/`, one file per page named
by its URL, each running the same script."""

import sys
from pathlib import Path

from dyntools.app.main import run

# Streamlit runs this file as __main__; worker processes of the HMM fits re-import the main
# module under another name, and must not start the app.
if __name__ == "__main__":
    run(sys.argv[1:], pages_folder=Path(__file__).resolve().parent / "pages")
