"""Decoding what AppTest captured: Vega-Lite specs and the Arrow data sent with them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from streamlit.testing.v1 import AppTest

from dyntools.app import PAGES


def vega_charts(app: AppTest) -> list[Any]:
    """Every Altair/Vega-Lite chart element of the page, in order."""
    return list(app.get("vega_lite_chart"))


def chart_spec(chart: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(chart.proto.spec)
    return spec


def chart_data(chart: Any) -> pl.DataFrame:
    """The chart's data, concatenated over its named datasets (Altair sends one per source)."""
    frames = [
        pl.from_arrow(pa.ipc.open_stream(dataset.data.data).read_all())
        for dataset in chart.proto.datasets
    ]
    if chart.proto.HasField("data"):
        frames.append(pl.from_arrow(pa.ipc.open_stream(chart.proto.data.data).read_all()))
    if not frames:
        raise ValueError("the chart carries no data")
    return pl.concat([f for f in frames if isinstance(f, pl.DataFrame)], how="diagonal")


REPO_ROOT = Path(__file__).resolve().parent.parent
APP = str(REPO_ROOT / "streamlit_app.py")
START_PAGE_KEY = "dyntools.start_page"
# url path -> page script, relative to the repository (AppTest.switch_page takes these), and
# run on its own by direct() (docs/design.md, "The app").
PAGE_FILES = {page.url_path: f"pages/{page.url_path}.py" for page in PAGES}


def routed(page: str, folder: Path | str, **params: str) -> AppTest:
    """The app through its router (sidebar and navigation), opened on ``page`` (a url path):
    AppTest cannot follow st.navigation links, so the router takes the start page from
    session state. Query parameters as a browser URL would carry them."""
    app = AppTest.from_file(APP, default_timeout=60)
    app.query_params["folder"] = str(folder)
    for name, value in params.items():
        app.query_params[name] = value
    app.session_state[START_PAGE_KEY] = page
    return app.run()


# The main script of direct(): the page's script from the package, on its own. Guarded, as
# every main script of the app: worker processes of the HMM fits re-import the main module.
DIRECT_SCRIPT = """
if __name__ == "__main__":
    import runpy

    runpy.run_path({path!r}, run_name="dyntools_page")
"""


def direct(page: str, folder: Path | str, **params: str) -> AppTest:
    """The page's script on its own, without the router (pages set up shared state
    themselves)."""
    spec = next(p for p in PAGES if p.url_path == page)
    app = AppTest.from_string(DIRECT_SCRIPT.format(path=str(spec.path)), default_timeout=60)
    app.query_params["folder"] = str(folder)
    for name, value in params.items():
        app.query_params[name] = value
    return app.run()


def by_key(elements: Any, key: str) -> Any:
    """The widget with this key."""
    for element in elements:
        if element.key == key:
            return element
    raise LookupError(f"no widget with key {key!r}; keys: {[e.key for e in elements]}")


def texts(app: AppTest) -> str:
    """Every message, caption and markdown text of the page, joined (for 'says X' checks)."""
    parts = []
    for kind in ("info", "error", "warning", "success", "caption", "markdown"):
        parts += [str(element.value) for element in getattr(app, kind)]
    return "\n".join(parts)


def blocks(app: AppTest, kind: str) -> list[Any]:
    """Every block of a type (``status``, ``expander``, ...) in the main area, in order."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if getattr(node, "type", None) == kind:
            found.append(node)
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(app.main)
    return found
