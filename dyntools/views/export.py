"""The bytes behind the app's download buttons: a frame as CSV or Parquet, a chart as SVG,
PNG or Vega-Lite JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl


def _csv(frame: pl.DataFrame) -> bytes:
    # CSV has no nested types: list columns (histogram edges, counts) become JSON-like text.
    flat = frame.with_columns(
        pl.col(name).cast(pl.List(pl.String)).list.join(";")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List)
    )
    return flat.write_csv().encode()


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


FORMATS: dict[str, tuple[Callable[[pl.DataFrame], bytes], str]] = {
    "csv": (_csv, "text/csv"),
    "parquet": (_parquet, "application/vnd.apache.parquet"),
}


def frame_bytes(frame: pl.DataFrame, fmt: str) -> tuple[bytes, str]:
    """(file content, MIME type) of ``frame`` in format ``fmt`` (csv or parquet)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}")
    write, mime = FORMATS[fmt]
    return write(frame), mime


CHART_FORMATS: dict[str, str] = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "vl.json": "application/json",
}


def chart_bytes(spec: Mapping[str, Any], fmt: str) -> tuple[bytes, str]:
    """(file content, MIME type) of a Vega-Lite chart (data inlined) as SVG, PNG or its JSON.

    Rendering runs offline through vl-convert (Vega's own renderer, bundled).
    """
    if fmt not in CHART_FORMATS:
        raise ValueError(f"unknown chart format {fmt!r}; choose one of {sorted(CHART_FORMATS)}")
    if fmt == "vl.json":
        return json.dumps(dict(spec), default=str).encode(), CHART_FORMATS[fmt]
    import vl_convert

    plain = json.loads(json.dumps(dict(spec), default=str))
    if fmt == "svg":
        return vl_convert.vegalite_to_svg(plain).encode(), CHART_FORMATS[fmt]
    return bytes(vl_convert.vegalite_to_png(plain, scale=2)), CHART_FORMATS[fmt]
