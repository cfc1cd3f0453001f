"""Schema versions: files from older, newer and foreign writers, built by hand."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from dyntools.store import SCHEMA_VERSION, SchemaVersionError, Store
from dyntools.store import schema as store_schema
from dyntools.store.schema import RUNS, DamagedStoreError


def make_version_0(path: Path) -> None:
    """A file claiming a schema version no migration starts from."""
    con = duckdb.connect(str(path))
    con.sql(store_schema.ddl())
    con.sql("INSERT INTO meta VALUES ('schema_version', '0'), ('data_version', '0')")
    con.close()


def set_version(path: Path, version: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version)])
    con.close()


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
    with pytest.raises(OSError, match=rf"{path} is not a DuckDB file, not a dyntools database"):
        Store(path).read_runs()


def test_a_sqlite_file_is_refused_without_reaching_for_an_extension(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "dyntools.duckdb"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(OSError, match=r"is a SQLite database, not a dyntools database"):
        Store(path).read_runs()
    with pytest.raises(OSError, match=r"is a SQLite database"):
        Store(path).upsert_runs(RUNS.frame([]))
    assert path.read_bytes().startswith(b"SQLite format")  # left as it was


def test_a_damaged_database_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "dyntools.duckdb"
    store = Store(path)
    store.upsert_runs(RUNS.frame([]))
    with duckdb.connect(str(path)) as con:
        con.sql("ALTER TABLE metrics DROP COLUMN value")
    with pytest.raises(DamagedStoreError, match=r"is a damaged dyntools database .*move it away"):
        Store(path).read_metrics()
