"""Widgets every page uses: user errors as messages, downloads, charts, the state graph."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import altair as alt
import polars as pl
import streamlit as st
from streamlit_agraph import Config, Edge, Node, agraph

from dyntools.charts.style import styled
from dyntools.store import SchemaVersionError, StoreBusyError
from dyntools.ui.state import URL
from dyntools.views.export import CHART_FORMATS, FORMATS, chart_bytes, frame_bytes
from dyntools.views.latent_states.graph import EdgeSpec, NodeSpec

# What dyntools raises for bad input or a busy database: shown as a message, never a traceback.
USER_ERRORS = (ValueError, OSError, LookupError, StoreBusyError, SchemaVersionError)


def stop_with_error(message: str) -> NoReturn:
    st.error(message)
    st.stop()


@contextmanager
def user_errors(what: str = "") -> Iterator[None]:
    """Show a dyntools user error as an error message and stop the page there."""
    try:
        yield
    except USER_ERRORS as error:
        prefix = f"{what}: " if what else ""
        stop_with_error(f"{prefix}{error}")


def _frame_file(frame: pl.DataFrame, fmt: str) -> bytes:
    return frame_bytes(frame, fmt)[0]


def _download_buttons(frame: pl.DataFrame, name: str, key: str) -> None:
    for fmt in ("csv", "parquet"):
        st.download_button(
            fmt.upper(),
            # Written only when clicked: every table's CSV and Parquet on every rerun cost
            # more than the page.
            data=functools.partial(_frame_file, frame, fmt),
            file_name=f"{name}.{fmt}",
            mime=FORMATS[fmt][1],
            key=f"{key}.{fmt}",
            help=f"Download the data behind this view ({frame.height} rows) as {fmt.upper()}",
            icon=":material/download:",
        )


def downloads(frame: pl.DataFrame, name: str, *, key: str) -> None:
    """CSV and Parquet downloads of the frame behind a view, in one row."""
    with st.container(horizontal=True):
        _download_buttons(frame, name, key)


def kept_multiselect(
    label: str, options: Sequence[str], *, key: str, help: str | None = None
) -> list[str]:
    """A multiselect whose choice (in ``st.session_state[key]`` and the URL) survives reruns;
    choices that are no longer offered (other runs chosen) are dropped instead of failing the
    widget."""
    current = st.session_state.get(key)
    if current is not None:
        kept = [name for name in current if name in set(options)]
        if kept != current:
            st.session_state[key] = kept
    chosen: list[str] = st.multiselect(label, list(options), key=key, help=help, bind=URL)
    return chosen


AnyChart = (
    alt.Chart
    | alt.LayerChart
    | alt.FacetChart
    | alt.VConcatChart
    | alt.HConcatChart
    | alt.ConcatChart
    | alt.RepeatChart
)


# (format, button label, icon) of the chart downloads under every chart.
CHART_BUTTONS = (
    ("svg", "SVG", ":material/image:"),
    ("png", "PNG", ":material/image:"),
    ("vl.json", "Vega-Lite", ":material/data_object:"),
)


def _chart_file(spec: AnyChart, fmt: str) -> bytes:
    content, _ = chart_bytes(spec.to_dict(), fmt)
    return content


def chart(
    spec: AnyChart,
    *,
    key: str,
    name: str,
    data: pl.DataFrame | None = None,
    on_select: bool = False,
) -> dict[str, Any]:
    """Show an Altair chart and, in one row below it, downloads of ``data`` (CSV, Parquet)
    and of the chart itself as SVG, PNG or Vega-Lite JSON (rendered only when clicked).
    Returns the selection event."""
    # The palette and legends of dyntools.charts, not Streamlit's theme: the same colours in
    # the app as in the exported files.
    spec = styled(spec)
    selection: dict[str, Any] = {}
    if on_select:
        event = st.altair_chart(spec, width="stretch", key=key, on_select="rerun", theme=None)
        selection = dict(event.selection or {})
    else:
        st.altair_chart(spec, width="stretch", key=key, theme=None)
    with st.container(horizontal=True):
        if data is not None:
            _download_buttons(data, name, key)
        for fmt, label, icon in CHART_BUTTONS:
            st.download_button(
                label,
                # A callable is run only on click: rendering every chart on every rerun would
                # cost more than drawing the page.
                data=functools.partial(_chart_file, spec, fmt),
                file_name=f"{name}.{fmt}",
                mime=CHART_FORMATS[fmt],
                key=f"{key}.{fmt}",
                icon=icon,
            )
    return selection


def state_graph(nodes: list[NodeSpec], edges: list[EdgeSpec], *, memo_key: str) -> str | None:
    """Draw the transition graph; returns the node id just clicked (None if no new click).

    streamlit-agraph has no ``key`` and keeps returning the last clicked node on every
    rerun, so only a change of its value counts as a click.
    """
    value = agraph(
        nodes=[
            Node(
                id=n.id,
                label=n.label,
                title=n.title,
                size=n.size,
                color=n.color,
                shape=n.shape,
                borderWidth=n.border_width,
                x=n.x,
                y=n.y,
                fixed=True,
                font={"size": 16},
            )
            for n in nodes
        ],
        edges=[
            Edge(
                source=e.source,
                target=e.target,
                label=e.label,
                title=e.title,
                width=e.width,
                color=e.color,
                smooth={"enabled": True, "type": "curvedCW", "roundness": 0.2},
                arrows="to",
            )
            for e in edges
        ],
        config=Config(
            width="100%",
            height=380,
            directed=True,
            physics=False,
            hierarchical=False,
            groups={},
            interaction={"hover": True, "tooltipDelay": 100},
        ),
    )
    clicked = value if isinstance(value, str) and value else None
    last = st.session_state.get(memo_key)
    st.session_state[memo_key] = clicked
    return clicked if clicked != last else None


NOTHING_COMPUTED = (
    "No metrics computed for `{folder}` yet: open **Hook points**, pick hook points and "
    "metrics and press **Compute**, or run `dyntools compute {folder}`{extra} in a terminal."
)


def require_metrics(folder: Any, state: Any, *, activations: bool = False) -> None:
    """Stop the page with what to do next when the folder has nothing computed yet."""
    if state.ready:
        return
    extra = " --activations" if activations else ""
    st.info(NOTHING_COMPUTED.format(folder=folder, extra=extra), icon=":material/info:")
    st.stop()
