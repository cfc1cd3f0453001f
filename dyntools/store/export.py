"""Export metrics and training scalars as one tidy table (CSV or Parquet).

Columns, one value per row:
    source      'metric' (a computed metric) or 'scalar' (a training scalar: loss, accuracy, ...)
    run_id      the run
    step        the training step of the checkpoint (or of the logged scalar)
    epoch       the epoch of that step, empty when the run does not record it
    kind        'weight' or 'activation': the kind of hook point ('' for scalars)
    scope       'tensor', 'hook_point' or 'network' ('' for scalars)
    hook_point  the layer ('' for network values and scalars)
    tensor      the tensor inside the hook point ('' unless scope is 'tensor')
    head        the attention head of a tensor split per head, else empty
    component   q, k or v of a fused Q/K/V tensor, else empty
    name        the metric or scalar name (l2, spectral, train_loss, ...)
    params      the metric's parameters as canonical JSON ('' for none)
    value       the number; empty when it could not be computed (NaN stays NaN)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import polars as pl

from dyntools.store.store import Store

WRITERS: dict[str, Callable[[pl.DataFrame, Path], None]] = {
    "csv": lambda frame, path: frame.write_csv(path),
    "parquet": lambda frame, path: frame.write_parquet(path),
}


def export(store: Store, out: Path, fmt: str) -> int:
    """Write ``store``'s tidy table to ``out`` in format ``fmt``; returns the number of rows."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {sorted(WRITERS)}")
    frame = store.tidy_table()
    out = Path(out)
    # Write next to the target and rename, so a reader never sees half a file.
    partial = out.with_name(f".{out.name}.partial")
    try:
        WRITERS[fmt](frame, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return frame.height
