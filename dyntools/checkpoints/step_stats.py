"""Per-step activation statistics of a run: the files ``dyntools.hooks.ActivationStats`` writes
while a model trains, and their reader.

A run folder may hold ``step_stats/part-000001.arrows``, ``part-000002.arrows``, ...: one file
per recording session (a resumed run, a second ``ActivationStats`` on other modules), each an
Arrow IPC stream (schema, then one record batch per chunk of steps, then the end-of-stream
marker when the session closed cleanly). A file only grows, and a chunk is appended whole and
flushed, so a reader can open it while training writes it; a crash loses at most the chunk
being written. Columns (one row per recorded step and module):

=============  ===========  ====================================================================
``step``       int64        optimizer steps taken before the forward pass (the step of the
                            checkpoint written with those weights)
``module``     string       the module's path in the model (``layers.0.act``)
``count``      int64        values recorded (every forward call of the module in that step)
``mean``       float64      mean of the finite values
``std``        float64      standard deviation (unbiased) of the finite values; NaN below two
``dead_fraction`` float64   share of values with ``|a| < dead_threshold`` (of ``count``)
``counts``     list<int64>  histogram of ``|a|``: ``bins`` equal bins over ``[low, high)``
``underflow``  int64        finite ``|a| < low``
``overflow``   int64        finite ``|a| >= high``
``nonfinite``  int64        NaN or infinite values
=============  ===========  ====================================================================

``sum(counts) + underflow + overflow + nonfinite == count``. The schema's metadata
(``dyntools.step_stats``, JSON) holds ``schema_version``, ``bins``, ``low``, ``high``, ``edges``,
``transform`` (``abs``), ``dead_threshold``, ``every``, ``modules`` (path -> class name),
``dyntools_version`` and ``created``. A leaf module: it imports nothing else of dyntools.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

STEP_STATS_DIR: Final = "step_stats"
PART_SUFFIX: Final = ".arrows"  # the Arrow project's suffix for its stream format
PART_RE: Final = re.compile(r"^part-(\d{6,})\.arrows$")
STEP_STATS_SCHEMA_VERSION: Final = 1
META_KEY: Final = "dyntools.step_stats"

_SCHEMA: Final = pa.schema(
    [
        ("step", pa.int64()),
        ("module", pa.string()),
        ("count", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("dead_fraction", pa.float64()),
        ("counts", pa.list_(pa.int64())),
        ("underflow", pa.int64()),
        ("overflow", pa.int64()),
        ("nonfinite", pa.int64()),
    ]
)
# What read_step_stats returns: the file's columns, then each row's settings from its file's
# metadata (so that rows of sessions with other bins stay self-describing).
FRAME_SCHEMA: Final = pl.Schema(
    {
        "step": pl.Int64(),
        "module": pl.String(),
        "module_type": pl.String(),
        "count": pl.Int64(),
        "mean": pl.Float64(),
        "std": pl.Float64(),
        "dead_fraction": pl.Float64(),
        "counts": pl.List(pl.Int64()),
        "underflow": pl.Int64(),
        "overflow": pl.Int64(),
        "nonfinite": pl.Int64(),
        "low": pl.Float64(),
        "high": pl.Float64(),
        "dead_threshold": pl.Float64(),
    }
)


@dataclass(frozen=True)
class StepStatsHeader:
    """One session's settings, written once into its file's schema metadata."""

    bins: int
    low: float
    high: float
    edges: tuple[float, ...]
    dead_threshold: float
    every: int
    modules: Mapping[str, str]  # module path -> class name, in the order rows are written
    transform: str = "abs"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": STEP_STATS_SCHEMA_VERSION,
                "bins": self.bins,
                "low": self.low,
                "high": self.high,
                "edges": list(self.edges),
                "transform": self.transform,
                "dead_threshold": self.dead_threshold,
                "every": self.every,
                "modules": dict(self.modules),
                "dyntools_version": _dyntools_version(),
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                **dict(self.extra),
            }
        )


@dataclass(frozen=True)
class StepStatsRow:
    """The statistics of one module's output in one step."""

    step: int
    module: str
    count: int
    mean: float
    std: float
    dead_fraction: float
    counts: Sequence[int] | np.ndarray[Any, np.dtype[np.int64]]
    underflow: int
    overflow: int
    nonfinite: int


_SCALARS: Final = (
    "step",
    "module",
    "count",
    "mean",
    "std",
    "dead_fraction",
    "underflow",
    "overflow",
    "nonfinite",
)


@dataclass(frozen=True)
class StepStatsChunk:
    """Rows as columns (what one ``StepStatsWriter.write`` appends); ``counts`` is a
    rows x bins array."""

    step: Sequence[int]
    module: Sequence[str]
    count: Sequence[int]
    mean: Sequence[float]
    std: Sequence[float]
    dead_fraction: Sequence[float]
    underflow: Sequence[int]
    overflow: Sequence[int]
    nonfinite: Sequence[int]
    counts: np.ndarray[Any, np.dtype[np.int64]]

    @staticmethod
    def scalar_columns() -> tuple[str, ...]:
        return _SCALARS

    @classmethod
    def of_rows(cls, rows: Sequence[StepStatsRow]) -> StepStatsChunk:
        columns = {name: [getattr(row, name) for row in rows] for name in _SCALARS}
        counts = np.array([list(row.counts) for row in rows], dtype=np.int64)
        return cls(counts=counts.reshape(len(rows), -1), **columns)


def _dyntools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dyntools")
    except PackageNotFoundError:
        return "unknown"


def step_stats_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / STEP_STATS_DIR


def step_stats_parts(run_dir: str | Path) -> list[Path]:
    """The run's statistics files, in the order they were started (empty if none)."""
    folder = step_stats_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PART_RE.match(p.name))]
    return [path for _, path in sorted(found)]


def remove_step_stats(run_dir: str | Path) -> int:
    """Delete the run's statistics files (a run folder being replaced); returns how many."""
    parts = step_stats_parts(run_dir)
    for path in parts:
        path.unlink()
    folder = step_stats_dir(run_dir)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return len(parts)


class StepStatsWriter:
    """Appends chunks of rows to a new ``step_stats/part-NNNNNN.arrows`` of ``run_dir``.

    Each ``write`` is one record batch, flushed and fsync'ed before it returns, so a reader (or
    a crash) never sees less than every earlier chunk. ``close`` writes the end-of-stream marker.
    """

    def __init__(self, run_dir: str | Path, header: StepStatsHeader) -> None:
        folder = step_stats_dir(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._file = self._create(folder)
        self.path = Path(self._file.name)
        schema = _SCHEMA.with_metadata({META_KEY: header.to_json()})
        self._schema = schema
        self._writer = pa.ipc.new_stream(self._file, schema, options=_write_options())
        self._closed = False

    @staticmethod
    def _create(folder: Path) -> IO[bytes]:
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := PART_RE.match(p.name))]
        number = max(numbers, default=0) + 1
        while True:
            path = folder / f"part-{number:06d}{PART_SUFFIX}"
            try:
                # Exclusive creation: two sessions starting at once never share a file.
                return open(path, "xb")  # closed by close()
            except FileExistsError:
                number += 1

    def write(self, rows: StepStatsChunk | Sequence[StepStatsRow]) -> None:
        """Append ``rows`` as one chunk."""
        if self._closed:
            raise ValueError(f"{self.path} is closed")
        chunk = rows if isinstance(rows, StepStatsChunk) else StepStatsChunk.of_rows(rows)
        n_rows, bins = chunk.counts.shape
        if not n_rows:
            return
        arrays = {
            name: pa.array(getattr(chunk, name), type=_SCHEMA.field(name).type) for name in _SCALARS
        }
        offsets = pa.array(np.arange(0, (n_rows + 1) * bins, bins, dtype=np.int32))
        flat = pa.array(np.ascontiguousarray(chunk.counts, dtype=np.int64).reshape(-1))
        arrays["counts"] = pa.ListArray.from_arrays(offsets, flat)
        batch = pa.record_batch([arrays[name] for name in _SCHEMA.names], schema=self._schema)
        self._writer.write_batch(batch)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def __enter__(self) -> StepStatsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _write_options() -> Any:
    # Histogram counts are mostly small numbers and zeros: zstd shrinks a chunk several times.
    # Any Arrow reader decompresses it; a pyarrow built without zstd writes plain buffers.
    try:
        return pa.ipc.IpcWriteOptions(compression="zstd")
    except (pa.ArrowNotImplementedError, ValueError):  # pragma: no cover (a build without zstd)
        return pa.ipc.IpcWriteOptions()


def _header_of(path: Path, schema: Any) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(META_KEY.encode())
    if raw is None:
        raise ValueError(f"{path} is not a dyntools step-statistics file (no {META_KEY} metadata)")
    try:
        header = json.loads(raw)
        version = int(header["schema_version"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: unreadable {META_KEY} metadata ({error})") from None
    if version > STEP_STATS_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has step-statistics schema version {version}; this dyntools reads up to "
            f"{STEP_STATS_SCHEMA_VERSION}: upgrade dyntools"
        )
    missing = set(_SCHEMA.names) - set(schema.names)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    return dict(header)


def read_step_stats_part(path: str | Path) -> pl.DataFrame:
    """Every complete chunk of one statistics file, as ``read_step_stats`` frames them.

    A file being written, or left by a crash, may end in a partial chunk (or hold no complete
    schema yet): what is complete is returned, the rest skipped without an error. A file that is
    not a step-statistics file is a ValueError naming it.
    """
    path = Path(path)
    batches = []
    try:
        if path.stat().st_size == 0:  # created, nothing written yet
            return FRAME_SCHEMA.to_frame()
        # A memory map of the size the file has now: a consistent snapshot while it grows.
        source = pa.memory_map(str(path), "r")
    except FileNotFoundError:
        return FRAME_SCHEMA.to_frame()
    with source:
        try:
            reader = pa.ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError):  # empty, or the schema itself is still partial
            return FRAME_SCHEMA.to_frame()
        header = _header_of(path, reader.schema)
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):  # the chunk being written, or cut by a crash
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
        # Arrow's buffers keep their mapped region alive after the file object closes.
        frame = pl.DataFrame(pl.from_arrow(table))
    return _framed(frame, header)


def _framed(frame: pl.DataFrame, header: Mapping[str, Any]) -> pl.DataFrame:
    types = header.get("modules") or {}
    return frame.with_columns(
        pl.col("module")
        .replace_strict(types, default="", return_dtype=pl.String)
        .alias("module_type"),
        pl.lit(float(header.get("low", math.nan)), pl.Float64).alias("low"),
        pl.lit(float(header.get("high", math.nan)), pl.Float64).alias("high"),
        pl.lit(float(header.get("dead_threshold", math.nan)), pl.Float64).alias("dead_threshold"),
    ).select([pl.col(name).cast(dtype) for name, dtype in FRAME_SCHEMA.items()])


def read_step_stats(run_dir: str | Path) -> pl.DataFrame:
    """A run's per-step activation statistics, sorted by step (modules in recording order).

    Columns: those of the files (module docstring), ``module_type`` (the module's class), and
    each row's ``low``, ``high`` and ``dead_threshold``; the histogram's edges are
    ``linspace(low, high, len(counts) + 1)``. Reads while training writes: a partial last chunk
    is skipped. No statistics (yet): an empty frame with these columns. A step recorded twice
    (a run resumed from an earlier checkpoint) keeps its latest row.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a folder: no run to read step statistics of")
    frames = [read_step_stats_part(path) for path in step_stats_parts(run_dir)]
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return FRAME_SCHEMA.to_frame()
    stacked = pl.concat(frames, how="vertical")
    return stacked.unique(subset=["step", "module"], keep="last", maintain_order=True).sort(
        "step", maintain_order=True
    )
