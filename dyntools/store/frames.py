"""Check and shape the polars frames written to the store."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from dyntools.store.schema import TABLES


def conform(frame: pl.DataFrame, table: str, *, dedupe: bool = True) -> pl.DataFrame:
    """``frame`` with the table's columns in order and types, duplicates of a key dropped.

    A key that occurs twice keeps its last row (DuckDB would silently keep the first of a batch),
    unless ``dedupe`` is False. Columns with a default may be left out.
    Missing or unknown columns, uncastable values and empty keys raise ValueError naming them.
    """
    spec = TABLES[table]
    columns = spec.columns
    unknown = [c for c in frame.columns if c not in spec.schema]
    missing = [c.name for c in columns if c.name not in frame.columns and not c.optional]
    if unknown or missing:
        optional = [c.name for c in columns if c.optional]
        raise ValueError(
            f"frame for table {table!r}: missing columns {missing}, unknown columns {unknown}; "
            f"expected {list(spec.schema)} (optional: {optional})"
        )
    defaults = {c.name: c.default for c in columns if c.name not in frame.columns}
    if "logged_at" in defaults:
        defaults["logged_at"] = datetime.now(UTC).replace(tzinfo=None)
    frame = frame.with_columns(
        pl.lit(value, dtype=spec.schema[name]).alias(name) for name, value in defaults.items()
    )
    try:
        frame = frame.select(pl.col(c.name).cast(c.dtype, strict=True) for c in columns)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as error:
        raise ValueError(
            f"frame for table {table!r} has a value of the wrong type: {error}"
        ) from None
    required = [c for c in spec.key if c not in spec.nullable_keys]
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
