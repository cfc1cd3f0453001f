"""Check and shape the polars frames written to the store, and the canonical keys callers share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from dyntools.store.schema import NULLABLE_KEYS, TABLES


def conform(frame: pl.DataFrame, table: str, *, dedupe: bool = True) -> pl.DataFrame:
    """``frame`` with the table's columns in order and types, duplicates of a key dropped.

    A key that occurs twice keeps its last row (DuckDB would silently keep the first of a batch),
    unless ``dedupe`` is False.
    Missing or unknown columns, uncastable values and empty keys raise ValueError naming them.
    """
    spec = TABLES[table]
    unknown = [c for c in frame.columns if c not in spec.columns]
    missing = [c for c in spec.columns if c not in frame.columns and c not in spec.defaults]
    if unknown or missing:
        raise ValueError(
            f"frame for table {table!r}: missing columns {missing}, unknown columns {unknown}; "
            f"expected {list(spec.columns)} (optional: {list(spec.defaults)})"
        )
    defaults = {c: v for c, v in spec.defaults.items() if c not in frame.columns}
    if "logged_at" in defaults:
        defaults["logged_at"] = datetime.now(UTC).replace(tzinfo=None)
    frame = frame.with_columns(pl.lit(v).alias(c) for c, v in defaults.items())
    try:
        frame = frame.select(pl.col(c).cast(t, strict=True) for c, t in spec.columns.items())
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as error:
        raise ValueError(
            f"frame for table {table!r} has a value of the wrong type: {error}"
        ) from None
    required = [c for c in spec.key if c not in NULLABLE_KEYS.get(table, set())]
    nulls = {
        c: n for c, n in frame.select(pl.col(required).null_count()).row(0, named=True).items() if n
    }
    if nulls:
        raise ValueError(f"frame for table {table!r} has empty key values (column: count): {nulls}")
    if table == "histograms":
        _check_histograms(frame)
    if not dedupe:
        return frame
    return frame.unique(subset=list(spec.key), keep="last", maintain_order=True)


def _check_histograms(frame: pl.DataFrame) -> None:
    bad = frame.filter(pl.col("counts").list.len() != pl.col("edges").list.len() - 1)
    if bad.height:
        first = bad.row(0, named=True)
        raise ValueError(
            f"{bad.height} histogram(s) need len(edges) == len(counts) + 1, e.g. run "
            f"{first['run_id']!r} step {first['step']} {first['hook_point']!r} "
            f"{first['metric']!r}: {len(first['edges'])} edges, {len(first['counts'])} counts"
        )


def params_key(params: Mapping[str, Any] | None) -> str:
    """The canonical text of a metric's parameters ('' for none): the ``params`` column value."""
    if not params:
        return ""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
