"""The dyntools app: the router (``main.py``) and one script per page (``page_scripts``).

It ships inside the package, so that ``dyntools app FOLDER`` serves it from an installed
dyntools; the repository's ``streamlit_app.py`` and ``pages/`` run the same scripts (the
development entry). Only this package and ``dyntools.ui`` import streamlit.
"""

from __future__ import annotations

import runpy
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PAGE_SCRIPTS: Final = Path(__file__).resolve().parent / "page_scripts"
MAIN_SCRIPT: Final = Path(__file__).resolve().parent / "main.py"


@dataclass(frozen=True)
class PageSpec:
    """One page: its script, title, icon and URL path."""

    script: str
    title: str
    icon: str
    url_path: str

    @property
    def path(self) -> Path:
        return PAGE_SCRIPTS / f"{self.script}.py"


PAGES: Final = (
    PageSpec("folder", "Folder", ":material/folder_open:", "folder"),
    PageSpec("hook_points", "Hook points", ":material/account_tree:", "hook-points"),
    PageSpec("metrics", "Metrics", ":material/show_chart:", "metrics"),
    PageSpec("latent_states", "Latent states", ":material/hub:", "latent-states"),
    PageSpec("compare_fits", "Compare fits", ":material/compare:", "compare-fits"),
    PageSpec("activations", "Activations", ":material/grid_on:", "activations"),
    PageSpec(
        "information_plane", "Information plane", ":material/scatter_plot:", "information-plane"
    ),
)


# True while the router runs a page: a ``pages/`` file that Streamlit runs by itself hands over
# to the router instead.
ROUTING: ContextVar[bool] = ContextVar("dyntools_routing", default=False)


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
        from dyntools.app.main import run

        run(sys.argv[1:], pages_folder=Path(page_file).resolve().parent)
        return
    spec = next(page for page in PAGES if page.url_path == url_path)
    runpy.run_path(str(spec.path), run_name=f"dyntools_page_{spec.script}")
