"""Store benchmark (b): an incremental re-run over 1000 unchanged checkpoints. Goal: under 1 s.

The timed path is everything a second `dyntools compute` must do before it knows there is nothing
to do: stat() every checkpoint file, read the stored fingerprints, reuse them where size and mtime
are unchanged (a header is hashed only when they differ), build the candidate units (checkpoint x
hook point x metric) and ask the store which are missing. The peer column compares the anti-join
in DuckDB with the same anti-join done in polars after reading the whole `computed` table.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import polars as pl

from bench.report import Row, best_of
from dyntools.store import Store

RUNS, CHECKPOINTS_PER_RUN = 10, 100
HOOK_POINTS = ["embed", "blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp", "unembed"]
TENSORS_PER_HOOK = 3
METRICS = [
    "l1", "l2", "trace", "spectral", "code_sparsity", "computational_sparsity",
    "mean_singular_value", "var_singular_value", "mean_w", "median_w", "var_w",
    "mean_b", "median_b", "var_b",
]  # fmt: skip
BATCH = 50  # checkpoints per write transaction


def header_hash(path: Path) -> str:
    # Stands in for the reader's hash of the safetensors header (8-byte length + JSON).
    with path.open("rb") as file:
        return hashlib.sha256(file.read(4096)).hexdigest()[:16]


def make_files(root: Path) -> pl.DataFrame:
    rows = []
    for run in range(RUNS):
        folder = root / f"seed{run}"
        folder.mkdir()
        for index in range(CHECKPOINTS_PER_RUN):
            path = folder / f"epoch_{index:05d}.safetensors"
            path.write_bytes(os.urandom(2048))
            rows.append({"run_id": f"seed{run}", "step": index * 100, "path": str(path)})
    return pl.DataFrame(rows)


def stat_files(files: pl.DataFrame) -> pl.DataFrame:
    stats = [os.stat(p) for p in files["path"]]
    return files.with_columns(
        size=pl.Series([s.st_size for s in stats], dtype=pl.Int64),
        mtime_ns=pl.Series([s.st_mtime_ns for s in stats], dtype=pl.Int64),
    )


def fingerprints(current: pl.DataFrame, stored: pl.DataFrame | None) -> pl.DataFrame:
    """Reuse stored header hashes where size and mtime are unchanged; hash the rest."""
    if stored is None:
        fresh = current
        kept = current.clear().with_columns(header_hash=pl.lit(""))
    else:
        joined = current.join(
            stored.select("path", "size", "mtime_ns", "header_hash"),
            on=["path", "size", "mtime_ns"],
            how="left",
        )
        kept = joined.filter(pl.col("header_hash").is_not_null())
        fresh = joined.filter(pl.col("header_hash").is_null()).drop("header_hash")
    fresh = fresh.with_columns(
        header_hash=pl.Series([header_hash(Path(p)) for p in fresh["path"]], dtype=pl.String)
    )
    frame = pl.concat([kept, fresh.select(kept.columns)])
    return frame.with_columns(
        epoch=pl.col("step") / 100,
        fingerprint=pl.format("{}:{}:{}", "size", "mtime_ns", "header_hash"),
    )


def candidates(checkpoints: pl.DataFrame) -> pl.DataFrame:
    units = pl.DataFrame({"hook_point": HOOK_POINTS}).join(
        pl.DataFrame({"metric": METRICS}), how="cross"
    )
    return (
        checkpoints.select("run_id", "step", "fingerprint")
        .join(units, how="cross")
        .with_columns(params=pl.lit(""), kind=pl.lit("weight"))
    )


def results(units: pl.DataFrame) -> pl.DataFrame:
    tensors = pl.DataFrame({"t": ["", *(f"t{i}" for i in range(TENSORS_PER_HOOK))]})
    return (
        units.join(tensors, how="cross")
        .with_columns(
            tensor=pl.when(pl.col("t") == "")
            .then(pl.lit(""))
            .otherwise(pl.col("hook_point") + "." + pl.col("t")),
            value=pl.col("step").cast(pl.Float64),
            scope=pl.when(pl.col("t") == "").then(pl.lit("hook_point")).otherwise(pl.lit("tensor")),
        )
        .select(
            "run_id", "step", "kind", "scope", "hook_point", "tensor", "metric", "params", "value"
        )
    )


def missing_in_polars(store: Store, wanted: pl.DataFrame) -> pl.DataFrame:
    # The peer: fetch the whole bookkeeping table and anti-join on this side.
    done = store._query("SELECT * FROM computed")
    keys = ["run_id", "step", "hook_point", "metric", "params", "fingerprint"]
    return wanted.join(done, on=keys, how="anti")


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_files(root)
        store = Store(root / ".dyntools" / "dyntools.duckdb")

        start = time.perf_counter()
        checkpoints = fingerprints(stat_files(files), None)
        store.upsert_checkpoints(checkpoints)
        units = candidates(checkpoints)
        todo = store.missing_work(units)
        steps = todo["step"].unique(maintain_order=True).to_list()
        for i in range(0, len(steps), BATCH):
            batch = todo.filter(pl.col("step").is_in(steps[i : i + BATCH]))
            store.write_results(metrics=results(batch), computed=batch)
        first = time.perf_counter() - start
        n_values = store.summary()["values"].sum()
        rows.append(
            Row(
                f"first compute: store {len(files)} ckpts, {n_values} values",
                first,
                None,
                note=f"{units.height} units, writes of {BATCH} checkpoints",
            )
        )

        def incremental() -> pl.DataFrame:
            current = fingerprints(stat_files(files), store.read_checkpoints())
            return store.missing_work(candidates(current))

        seconds, missing = best_of(5, incremental)
        if missing.height or missing_in_polars(store, units).height:
            raise RuntimeError(f"unchanged files left work: {missing.height} units")
        rows.append(
            Row(
                f"re-run over {len(files)} unchanged checkpoints",
                seconds,
                None,
                goal="goal < 1 s",
                note="stat + read fingerprints + compare + candidates + missing_work",
            )
        )
        missing_seconds, _ = best_of(5, lambda: store.missing_work(units))
        peer_seconds, _ = best_of(5, lambda: missing_in_polars(store, units))
        rows.append(
            Row(
                f"missing_work alone, {units.height} units (peer: polars anti-join)",
                missing_seconds,
                peer_seconds,
            )
        )
        upsert_seconds, _ = best_of(3, lambda: store.upsert_checkpoints(checkpoints))
        rows.append(Row("upsert 1000 unchanged checkpoints", upsert_seconds, None))

        # One checkpoint rewritten: only it is hashed and recomputed.
        touched = Path(files["path"][123])
        touched.write_bytes(os.urandom(4096))
        current = fingerprints(stat_files(files), store.read_checkpoints())
        store.upsert_checkpoints(current)
        redo = store.missing_work(candidates(current))
        if redo["step"].n_unique() != 1 or redo.height != len(HOOK_POINTS) * len(METRICS):
            raise RuntimeError(f"a changed checkpoint should redo one checkpoint: {redo.height}")

        read_seconds, frame = best_of(5, lambda: store.read_metrics(run_ids=["seed3"]))
        rows.append(
            Row(f"app query: read_metrics of one run ({frame.height} rows)", read_seconds, None)
        )
        export_seconds, _ = best_of(1, lambda: store.tidy_table().write_parquet(root / "t.parquet"))
        rows.append(Row(f"export {n_values} values to parquet", export_seconds, None))
        size = (root / ".dyntools" / "dyntools.duckdb").stat().st_size
        rows.append(Row("database file size", size / 2**20, None, unit="MiB"))
    return rows
