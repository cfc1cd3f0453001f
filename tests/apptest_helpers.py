"""Decoding what AppTest captured: Vega-Lite specs and the Arrow data sent with them."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pyarrow as pa
from streamlit.testing.v1 import AppTest


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
