"""The store's tables and the schema version.

Each table is declared once, as the NamedTuple of its rows (``MetricRow``, ...) and a ``Table``
naming its key: the DDL, the polars schema of the frames that go in, and the typed rows the
pipeline builds all come from that declaration.

Every table is long ("tidy"): one value per row, keyed by what produced it. Text key columns that
do not apply hold '' rather than NULL, so that keys compare with plain '=' (``params = ''`` is a
metric without parameters); ``scope`` says whether a value is a tensor's, a hook point's or the
whole network's, and ``kind`` whether its hook point is a weight or an activation hook point.

Only the small tables (meta, runs, checkpoints, hmm_fits) declare a PRIMARY KEY. The result tables
have a key (``Table.key``) that the store keeps unique itself: every write deletes the rows with
the batch's keys and inserts the batch, in one transaction (the file lock makes the store the only
writer). Measured with 336,000 metric values: a six-column primary key made the file 44.5 MiB
instead of 2.3 MiB and the first compute's writes 2.3 times slower, and bought nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_type_hints

import duckdb
import polars as pl

from dyntools.metrics.kinds import HookKind
from dyntools.metrics.records import Scope

# Bump when a table changes, and add a migration from the previous version to MIGRATIONS.
SCHEMA_VERSION = 6


# -- the rows of every table: the one declaration the DDL and the polars schemas derive from ---


class MetaRow(NamedTuple):
    key: str
    value: str


class RunRow(NamedTuple):
    run_id: str
    path: str
    layout: str
    config_json: str = "{}"
    # The hook-point selection (params of the network-scope rows) of the run's last compute
    # with the default selection: what a fit of the paper features uses unless told otherwise.
    network_selection: str = ""


class ModuleRow(NamedTuple):
    """A named module of a run's rebuilt model: where it sits in the network (the model's
    registration order, ``named_modules``) and its class. The app lists hook points in this
    order and finds activation functions (dead units) by their class."""

    run_id: str
    hook_point: str
    position: int
    module_type: str


class CheckpointRow(NamedTuple):
    run_id: str
    step: int
    path: str
    size: int
    mtime_ns: int
    header_hash: str
    fingerprint: str
    epoch: float | None = None
    # The floating-point type of its weights (float32, bfloat16, ...; "mixed" when several).
    dtype: str = ""
    # Gone from disk since it was computed: its results are kept for the record and left out
    # of fits, views and exports (a later scan that finds it again clears the flag).
    gone: bool = False


class ScalarRow(NamedTuple):
    run_id: str
    step: int
    name: str
    value: float | None
    epoch: float | None = None


class MetricRow(NamedTuple):
    """One value: ``kind`` (weight/activation hook point), ``scope`` (tensor, hook_point or
    network; network rows have hook_point ''), ``head`` for a matrix split per head,
    ``component`` for one projection of a fused Q/K/V tensor."""

    run_id: str
    step: int
    kind: HookKind
    scope: Scope
    hook_point: str
    metric: str
    value: float | None
    tensor: str = ""
    head: int | None = None
    component: str = ""  # q, k or v of a fused Q/K/V tensor
    params: str = ""


class HistogramRow(NamedTuple):
    run_id: str
    step: int
    kind: HookKind
    hook_point: str
    metric: str
    edges: list[float]
    counts: list[int]
    params: str = ""
    underflow: int = 0
    overflow: int = 0


class ErrorRow(NamedTuple):
    """A problem met reading or computing: ``code`` is a ``ReasonCode`` value (or
    ``unreadable`` for a file discovery could not read).

    ``kind`` and ``hook_point``: the units of work it belongs to (hook point '' for the network
    values; None for the whole checkpoint, or for a file, without a kind), so a recompute of
    those units replaces it.
    """

    file: str
    stage: str
    what: str
    code: str
    why: str
    run_id: str | None = None
    step: int | None = None
    logged_at: datetime | None = None
    kind: HookKind | None = None
    hook_point: str | None = None


class ComputedRow(NamedTuple):
    """One unit of work done from one version of a checkpoint."""

    run_id: str
    step: int
    kind: HookKind
    hook_point: str
    metric: str
    fingerprint: str
    params: str = ""
    # What the unit was computed from, beyond its params: a digest of its input tensors' cuts
    # (and, for network values, which tensors each pool takes); '' where the params say it all,
    # and for units stored before schema 6, which did not record it.
    inputs: str = ""


class FitRow(NamedTuple):
    config_hash: str
    config_json: str
    result_json: str
    created_at: datetime


# Python annotation -> (DuckDB type, polars type)
_TYPES: dict[object, tuple[str, pl.DataType]] = {
    bool: ("BOOLEAN", pl.Boolean()),
    str: ("VARCHAR", pl.String()),
    int: ("BIGINT", pl.Int64()),
    float: ("DOUBLE", pl.Float64()),
    datetime: ("TIMESTAMP", pl.Datetime("us")),
    list[float]: ("DOUBLE[]", pl.List(pl.Float64())),
    list[int]: ("BIGINT[]", pl.List(pl.Int64())),
}
_NO_DEFAULT = object()


@dataclass(frozen=True)
class TableColumn:
    """One column: its name, DuckDB and polars types, and the default a frame may omit."""

    name: str
    sql: str
    dtype: pl.DataType
    nullable: bool
    default: object = _NO_DEFAULT

    @property
    def optional(self) -> bool:
        """Whether a frame written to the table may leave this column out."""
        return self.default is not _NO_DEFAULT

    def ddl(self) -> str:
        text = f"{self.name} {self.sql}" + ("" if self.nullable else " NOT NULL")
        if isinstance(self.default, str):
            text += " DEFAULT '" + self.default.replace("'", "''") + "'"
        elif isinstance(self.default, int | float):
            text += f" DEFAULT {self.default}"
        return text


@dataclass(frozen=True)
class Table:
    """One table: its row type, columns (from the row's annotations) and key.

    ``primary_key``: DuckDB enforces the key (INSERT OR REPLACE); otherwise the store keeps it
    unique itself (DELETE + INSERT in one transaction), which measured far smaller and faster
    for the result tables (see the module docstring).
    """

    name: str
    row: type[tuple[Any, ...]]
    key: tuple[str, ...]
    primary_key: bool = False

    @property
    def columns(self) -> tuple[TableColumn, ...]:
        hints = get_type_hints(self.row)
        defaults: dict[str, object] = getattr(self.row, "_field_defaults", {})
        columns = []
        for name, hint in hints.items():
            args = get_args(hint)
            nullable = type(None) in args
            base = next(a for a in args if a is not type(None)) if nullable else hint
            # Enumerations (StrEnum: hook kinds, scopes) are stored as their text.
            sql, dtype = _TYPES[
                str if isinstance(base, type) and issubclass(base, StrEnum) else base
            ]
            columns.append(TableColumn(name, sql, dtype, nullable, defaults.get(name, _NO_DEFAULT)))
        return tuple(columns)

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """The polars schema of the table's frames."""
        return {column.name: column.dtype for column in self.columns}

    @property
    def nullable_keys(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.nullable and c.name in self.key)

    def ddl(self) -> str:
        lines = [column.ddl() for column in self.columns]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.key)})")
        return f"CREATE TABLE {self.name} (\n    " + ",\n    ".join(lines) + ");"

    def frame(self, rows: Iterable[tuple[Any, ...]]) -> pl.DataFrame:
        """A frame of typed rows (instances of ``row``)."""
        return pl.DataFrame(list(rows), schema=self.schema, orient="row")


META = Table("meta", MetaRow, key=("key",), primary_key=True)
RUNS = Table("runs", RunRow, key=("run_id",), primary_key=True)
CHECKPOINTS = Table("checkpoints", CheckpointRow, key=("run_id", "step"), primary_key=True)
MODULES = Table("modules", ModuleRow, key=("run_id", "hook_point"), primary_key=True)
SCALARS = Table("scalars", ScalarRow, key=("run_id", "step", "name"))
METRICS = Table(
    "metrics",
    MetricRow,
    key=("run_id", "step", "hook_point", "tensor", "head", "component", "metric", "params"),
)
HISTOGRAMS = Table(
    "histograms", HistogramRow, key=("run_id", "step", "hook_point", "metric", "params")
)
# A new error replaces an old one with the same (run_id, step, file, stage, what).
ERRORS = Table("errors", ErrorRow, key=("run_id", "step", "file", "stage", "what"))
COMPUTED = Table("computed", ComputedRow, key=("run_id", "step", "hook_point", "metric", "params"))
FITS = Table("hmm_fits", FitRow, key=("config_hash",), primary_key=True)

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        META,
        RUNS,
        MODULES,
        CHECKPOINTS,
        SCALARS,
        METRICS,
        HISTOGRAMS,
        ERRORS,
        COMPUTED,
        FITS,
    )
}


def ddl() -> str:
    """CREATE TABLE statements of the current schema."""
    return "\n".join(table.ddl() for table in TABLES.values())


Migration = Callable[[duckdb.DuckDBPyConnection], None]


class SchemaVersionError(ValueError):
    """The database file was written by a dyntools whose schema this one cannot read."""


class DamagedStoreError(SchemaVersionError):
    """A dyntools database file whose tables or columns are not what its version says."""


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
    con.sql(ddl())
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
