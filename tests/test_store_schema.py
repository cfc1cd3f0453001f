"""Schema versions: files from older, newer and foreign writers, built by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dyntools.store import SCHEMA_VERSION, SchemaVersionError, Store
from dyntools.store import schema as store_schema

# The metrics table as a hypothetical schema version 0 had it: no params column.
OLD_METRICS = """
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, hook_point VARCHAR NOT NULL,
    tensor VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE,
    PRIMARY KEY (run_id, step, hook_point, tensor, metric));
"""


NEW_METRICS = """
CREATE TABLE metrics (
    run_id VARCHAR NOT NULL, step BIGINT NOT NULL, hook_point VARCHAR NOT NULL,
    tensor VARCHAR NOT NULL, metric VARCHAR NOT NULL, params VARCHAR NOT NULL, value DOUBLE,
    PRIMARY KEY (run_id, step, hook_point, tensor, metric, params));
"""


def make_version_0(path: Path) -> None:
    """A file as that version 0 wrote it, with one stored value."""
    con = duckdb.connect(str(path))
    con.sql(store_schema.DDL)
    con.sql("DROP TABLE metrics")
    con.sql(OLD_METRICS)
    con.sql("INSERT INTO metrics VALUES ('r', 1, 'fc1', '', 'l2', 4.0)")
    con.sql("INSERT INTO meta VALUES ('schema_version', '0'), ('data_version', '0')")
    con.close()


def migrate_0_to_1(con: duckdb.DuckDBPyConnection) -> None:
    # DuckDB cannot change a primary key in place: rebuild the table.
    con.sql("ALTER TABLE metrics RENAME TO metrics_v0")
    con.sql(NEW_METRICS)
    con.sql(
        "INSERT INTO metrics SELECT run_id, step, hook_point, tensor, metric, '', value "
        "FROM metrics_v0"
    )
    con.sql("DROP TABLE metrics_v0")


def set_version(path: Path, version: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    con.close()


@pytest.fixture
def with_migration() -> Iterator[None]:
    """Register the 0 -> 1 migration, as a release that changed the schema would."""
    if SCHEMA_VERSION != 1:
        pytest.skip("the hand-made version 0 file assumes the current schema is version 1")
    store_schema.MIGRATIONS[0] = migrate_0_to_1
    yield
    del store_schema.MIGRATIONS[0]


def test_a_new_file_records_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "dyntools.duckdb"
    Store(path).upsert_runs(pl.DataFrame({"run_id": ["r"], "path": ["/r"], "layout": ["own"]}))
    con = duckdb.connect(str(path), read_only=True)
    meta = dict(con.sql("SELECT key, value FROM meta").fetchall())
    con.close()
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["created_by"].startswith("dyntools ")


def test_an_older_file_without_a_migration_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0(path)
    for action in (Store(path).read_metrics, lambda: Store(path).write_results()):
        with pytest.raises(SchemaVersionError, match=rf"{path}.*older dyntools.*delete it"):
            action()


@pytest.mark.usefixtures("with_migration")
def test_an_older_file_is_migrated_and_keeps_its_values(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_version_0(path)
    got = Store(path).read_metrics()  # a reader triggers the migration too
    assert got.select("metric", "params", "value").rows() == [("l2", "", 4.0)]
    con = duckdb.connect(str(path), read_only=True)
    assert con.sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [("1",)]
    con.close()


def test_a_newer_file_is_refused_with_upgrade_advice(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    Store(path).upsert_runs(pl.DataFrame({"run_id": ["r"], "path": ["/r"], "layout": ["own"]}))
    set_version(path, SCHEMA_VERSION + 1)
    for action in (Store(path).read_runs, lambda: Store(path).write_results()):
        with pytest.raises(SchemaVersionError, match=rf"{path} was written by a newer.*upgrade"):
            action()
    # Refusing changed nothing.
    set_version(path, SCHEMA_VERSION)
    assert Store(path).read_runs()["run_id"].to_list() == ["r"]


def test_a_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.sql("CREATE TABLE sales (id INTEGER)")
    con.close()
    with pytest.raises(SchemaVersionError, match=rf"{path} is not a dyntools database"):
        Store(path).upsert_runs(pl.DataFrame({"run_id": ["r"], "path": ["/r"], "layout": ["own"]}))


def test_a_file_that_is_not_duckdb_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "dyntools.duckdb"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(OSError, match=rf"cannot open dyntools database {path}.*not a valid DuckDB"):
        Store(path).read_runs()
