"""The dyntools app: the router (``main.py``) and one script per page (``page_scripts``).

It ships inside the package, so that ``dyntools app FOLDER`` serves it from an installed
dyntools; the repository's ``streamlit_app.py`` and ``pages/`` run the same scripts (the
development entry). Only this package and ``dyntools.ui`` import streamlit.
"""

from __future__ import annotations

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
    PageSpec("steps", "Training steps", ":material/timeline:", "steps"),
    PageSpec(
        "information_plane", "Information plane", ":material/scatter_plot:", "information-plane"
    ),
)


# True while the router runs a page: a ``pages/`` file that Streamlit runs by itself hands over
# to the router instead.
ROUTING: ContextVar[bool] = ContextVar("dyntools_routing", default=False)
