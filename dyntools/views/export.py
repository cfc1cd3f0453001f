"""The bytes behind the app's download buttons: a frame as CSV or Parquet."""

from __future__ import annotations

import io
from collections.abc import Callable

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
