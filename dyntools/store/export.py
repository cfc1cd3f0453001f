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
import stat
from collections.abc import Callable
from pathlib import Path

import polars as pl

from dyntools.store.store import Store

WRITERS: dict[str, Callable[[pl.DataFrame, Path], None]] = {
    "csv": lambda frame, path: frame.write_csv(path),
    "parquet": lambda frame, path: frame.write_parquet(path),
}


def _check_target(out: Path, db: Path) -> None:
    """Refuse to replace anything but a regular file, and the database itself."""
    if os.path.lexists(out):
        mode = os.lstat(out).st_mode
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise ValueError(
                f"{out} is {kind}: an export replaces only a regular file; choose another --out"
            )
    database = db.absolute().resolve()
    if out.absolute().resolve() in {database, database.with_name(database.name + ".wal")}:
        raise ValueError(
            f"{out} is the dyntools database (or its log): an export there would destroy "
            "every stored result and fit; choose another --out"
        )


def export(store: Store, out: Path, fmt: str) -> int:
    """Write ``store``'s tidy table to ``out`` in format ``fmt``; returns the number of rows."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {sorted(WRITERS)}")
    out = Path(out)
    _check_target(out, store.path)
    frame = store.tidy_table()
    # Write next to the target and rename, so a reader never sees half a file.
    partial = out.with_name(f".{out.name}.partial")
    try:
        WRITERS[fmt](frame, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return frame.height
