"""Chart and frame downloads: real renderings of a real chart, readable files."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import polars as pl
import pytest

from dyntools import charts
from dyntools.checkpoints.records import Axis
from dyntools.views.export import chart_bytes, frame_bytes
from dyntools.views.time import with_time


def scalars() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": ["a"] * 4 + ["b"] * 4,
            "task": ["t"] * 8,
            "epoch": [0, 1, 0, 1] * 2,
            "step": [0, 1, 0, 1] * 2,
            "name": ["train_loss", "train_loss", "val_acc", "val_acc"] * 2,
            "value": [2.0, 1.0, 0.1, 0.5, 2.5, 1.5, 0.2, 0.7],
        }
    )


def test_a_chart_renders_to_svg_png_and_vega_lite() -> None:
    spec = charts.training_curves(with_time(scalars(), Axis.STEP), Axis.STEP).to_dict()
    svg, mime = chart_bytes(spec, "svg")
    assert mime == "image/svg+xml"
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert b"accuracy" in svg and b"loss" in svg  # the axis titles are drawn
    assert b">step<" in svg  # and the time axis says what it counts
    png, _ = chart_bytes(spec, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    vega, _ = chart_bytes(spec, "vl.json")
    assert json.loads(vega)["vconcat"]
    with pytest.raises(ValueError, match="unknown chart format"):
        chart_bytes(spec, "pdf")


def test_frames_round_trip_as_csv_and_parquet() -> None:
    frame = scalars()
    csv, _ = frame_bytes(frame, "csv")
    assert pl.read_csv(io.BytesIO(csv)).equals(frame)
    parquet, _ = frame_bytes(frame, "parquet")
    assert pl.read_parquet(io.BytesIO(parquet)).equals(frame)
