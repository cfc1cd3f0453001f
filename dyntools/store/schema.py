"""The store's tables: their DDL, the polars schema of the frames that go in, and the schema version.

Every table is long ("tidy"): one value per row, keyed by what produced it. Text key columns that do
not apply hold '' rather than NULL, so that keys compare with plain '=': ``tensor = ''`` marks a
hook-point-level value, ``params = ''`` a metric without parameters.

Only the small tables (meta, runs, checkpoints, hmm_fits) declare a PRIMARY KEY. The result tables
have a key (TableSpec.key) that the store keeps unique itself: every write deletes the rows with
the batch's keys and inserts the batch, in one transaction (the file lock makes the store the only
writer). Measured with 336,000 metric values: a six-column primary key made the file 44.5 MiB
instead of 2.3 MiB and the first compute's writes 2.3 times slower, and bought nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

# Bump when the DDL changes, and add a migration from the previous version to MIGRATIONS.
SCHEMA_VERSION = 1

DDL = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, path VARCHAR NOT NULL, layout VARCHAR NOT NULL,
    config_json VARCHAR NOT NULL);
CREATE TABLE checkpoints (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, epoch DOUBLE, path VARCHAR NOT NULL,
    size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, header_hash VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    PRIMARY KEY (run_id, step));
CREATE TABLE scalars (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, epoch DOUBLE, name VARCHAR NOT NULL,
    value DOUBLE);
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, hook_point VARCHAR NOT NULL,
    tensor VARCHAR NOT NULL, metric VARCHAR NOT NULL, params VARCHAR NOT NULL, value DOUBLE);
CREATE TABLE histograms (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, hook_point VARCHAR NOT NULL,
    tensor VARCHAR NOT NULL, metric VARCHAR NOT NULL, params VARCHAR NOT NULL,
    edges DOUBLE[] NOT NULL, counts BIGINT[] NOT NULL,
    underflow BIGINT NOT NULL, overflow BIGINT NOT NULL);
CREATE TABLE errors (
    run_id VARCHAR, step BIGINT, file VARCHAR NOT NULL, stage VARCHAR NOT NULL,
    what VARCHAR NOT NULL, why VARCHAR NOT NULL, logged_at TIMESTAMP NOT NULL);
CREATE TABLE computed (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, hook_point VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, params VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL);
CREATE TABLE hmm_fits (
    config_hash VARCHAR PRIMARY KEY, config_json VARCHAR NOT NULL, result_json VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL);
"""


@dataclass(frozen=True)
class TableSpec:
    """The columns a frame written to one table must have, in order, and its key."""

    columns: Mapping[str, pl.DataType]
    key: tuple[str, ...]
    # Whether DuckDB enforces the key (INSERT OR REPLACE) or the store does (DELETE + INSERT).
    primary_key: bool = False
    # Columns the caller may leave out, with the value they get.
    defaults: Mapping[str, Any] = field(default_factory=dict)


TEXT, INT, FLOAT = pl.String(), pl.Int64(), pl.Float64()

TABLES: dict[str, TableSpec] = {
    "runs": TableSpec(
        {"run_id": TEXT, "path": TEXT, "layout": TEXT, "config_json": TEXT},
        key=("run_id",),
        primary_key=True,
        defaults={"config_json": "{}"},
    ),
    "checkpoints": TableSpec(
        {
            "run_id": TEXT,
            "step": INT,
            "epoch": FLOAT,
            "path": TEXT,
            "size": INT,
            "mtime_ns": INT,
            "header_hash": TEXT,
            "fingerprint": TEXT,
        },
        key=("run_id", "step"),
        primary_key=True,
        defaults={"epoch": None},
    ),
    "scalars": TableSpec(
        {"run_id": TEXT, "step": INT, "epoch": FLOAT, "name": TEXT, "value": FLOAT},
        key=("run_id", "step", "name"),
        defaults={"epoch": None},
    ),
    "metrics": TableSpec(
        {
            "run_id": TEXT,
            "step": INT,
            "hook_point": TEXT,
            "tensor": TEXT,
            "metric": TEXT,
            "params": TEXT,
            "value": FLOAT,
        },
        key=("run_id", "step", "hook_point", "tensor", "metric", "params"),
        defaults={"tensor": "", "params": ""},
    ),
    "histograms": TableSpec(
        {
            "run_id": TEXT,
            "step": INT,
            "hook_point": TEXT,
            "tensor": TEXT,
            "metric": TEXT,
            "params": TEXT,
            "edges": pl.List(FLOAT),
            "counts": pl.List(INT),
            "underflow": INT,
            "overflow": INT,
        },
        key=("run_id", "step", "hook_point", "tensor", "metric", "params"),
        defaults={"tensor": "", "params": "", "underflow": 0, "overflow": 0},
    ),
    # run_id and step may be NULL for a file that names no run; a new error replaces an old one
    # with the same (run_id, step, file, stage, what).
    "errors": TableSpec(
        {
            "run_id": TEXT,
            "step": INT,
            "file": TEXT,
            "stage": TEXT,
            "what": TEXT,
            "why": TEXT,
            "logged_at": pl.Datetime("us"),
        },
        key=("run_id", "step", "file", "stage", "what"),
        defaults={"run_id": None, "step": None, "logged_at": None},
    ),
    "computed": TableSpec(
        {
            "run_id": TEXT,
            "step": INT,
            "hook_point": TEXT,
            "metric": TEXT,
            "params": TEXT,
            "fingerprint": TEXT,
        },
        key=("run_id", "step", "hook_point", "metric", "params"),
        defaults={"params": ""},
    ),
}

# Key columns that may hold NULL (everything else in a key must be filled in).
NULLABLE_KEYS = {"errors": {"run_id", "step"}}

Migration = Callable[[duckdb.DuckDBPyConnection], None]

# from_version -> function that upgrades a file of that version to from_version + 1, inside the
# caller's transaction. Empty while version 1 is the only one released.
MIGRATIONS: dict[int, Migration] = {}


class SchemaVersionError(ValueError):
    """The database file was written by a dyntools whose schema this one cannot read."""


def read_version(con: duckdb.DuckDBPyConnection, path: Path) -> int | None:
    """The file's schema version; None for a file with no tables yet (a new store)."""
    tables = {row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not tables:
        return None
    if "meta" not in tables:
        raise SchemaVersionError(
            f"{path} is not a dyntools database (it has tables {sorted(tables)} but no 'meta'): "
            "pass another --db path, or move that file away"
        )
    rows = con.sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    if not rows:
        raise SchemaVersionError(
            f"{path} has no schema_version in its meta table: it is not a dyntools database or "
            "it was damaged; move it away and run `dyntools compute` again"
        )
    return int(rows[0][0])


def check_version(version: int, path: Path, migrations: Mapping[int, Migration]) -> None:
    """Raise unless a file of ``version`` can be used as is or migrated to SCHEMA_VERSION."""
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} was written by a newer dyntools (schema version {version}; this dyntools "
            f"reads version {SCHEMA_VERSION}): upgrade dyntools (pip install -U dyntools)"
        )
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in migrations]
    if missing:
        raise SchemaVersionError(
            f"{path} was written by an older dyntools (schema version {version}; this dyntools "
            f"reads version {SCHEMA_VERSION}) and cannot be migrated: delete it and run "
            "`dyntools compute` again (every result is recomputed from the checkpoints; "
            "saved HMM fits are lost)"
        )


def create(con: duckdb.DuckDBPyConnection, created_by: str) -> None:
    """Create every table of the current schema (inside the caller's transaction)."""
    con.sql(DDL)
    con.execute(
        "INSERT INTO meta VALUES ('schema_version', ?), ('created_by', ?), ('data_version', '0')",
        [str(SCHEMA_VERSION), created_by],
    )


def migrate(
    con: duckdb.DuckDBPyConnection, version: int, path: Path, migrations: Mapping[int, Migration]
) -> None:
    """Upgrade a file from ``version`` to SCHEMA_VERSION, one step at a time (caller's transaction)."""
    check_version(version, path, migrations)
    for step in range(version, SCHEMA_VERSION):
        migrations[step](con)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
