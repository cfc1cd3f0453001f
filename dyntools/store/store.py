"""The store: one DuckDB file per analysis, polars frames in and out, one transaction per call.

Typical use by the compute pipeline::

    store = Store(default_db_path(folder))
    store.upsert_runs(runs)
    changed = store.upsert_checkpoints(checkpoints)   # old results of changed files are dropped
    todo = store.missing_work(candidates)             # what is not yet computed from these files
    for batch in compute(todo):
        store.write_results(metrics=..., histograms=..., errors=..., computed=...)

Every write is one transaction: a process killed mid-way leaves either the whole batch or none.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dyntools import __version__
from dyntools.store import queries, schema
from dyntools.store.connection import connect, transaction
from dyntools.store.frames import conform
from dyntools.store.migrations import MIGRATIONS
from dyntools.store.queries import CHECKPOINT, UNIT, Names, on
from dyntools.store.schema import FITS, DamagedStoreError
from dyntools.text import path_text

DEFAULT_LOCK_TIMEOUT = 10.0


class NoResultsError(FileNotFoundError):
    """The database file exists but a compute never got as far as creating its tables."""


@dataclass(frozen=True)
class StoredFit:
    """A saved HMM fit: its configuration, its result (JSON text) and when it was saved (UTC)."""

    config_hash: str
    config: dict[str, Any]
    result_json: str
    created_at: datetime


class Store:
    """The dyntools database at ``path``; opened per operation, never held open."""

    def __init__(self, path: Path | str, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(path).resolve()
        self.lock_timeout = lock_timeout
        self._ready = False  # schema checked (and created or migrated) by this instance

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        """Whether the database file exists (a compute has started at least once)."""
        return self.path.is_file()

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def _writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._disk_full_explained():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existed = self.exists  # a file deleted since the last check gets its schema again
            with connect(self.path, read_only=False, lock_timeout=self.lock_timeout) as con:
                if not self._ready or not existed:
                    with transaction(con):
                        version = schema.read_version(con, self.path)
                        if version is None:
                            schema.create(con, created_by=f"dyntools {__version__}")
                        elif version != schema.SCHEMA_VERSION:
                            schema.migrate(con, version, self.path, MIGRATIONS)
                    self._ready = True
                with transaction(con), self._damage_explained():
                    yield con

    @contextmanager
    def _disk_full_explained(self) -> Iterator[None]:
        """A write that runs out of disk is rolled back whole and says so in one line."""
        try:
            yield
        except (duckdb.Error, OSError) as error:
            full = isinstance(error, OSError) and error.errno == errno.ENOSPC
            if not (full or "no space left" in str(error).lower()):
                raise
            raise OSError(
                errno.ENOSPC,
                f"the disk holding {self.path} is full: this write was rolled back and "
                "nothing stored before it was lost; free some space and run again",
            ) from None

    @contextmanager
    def _damage_explained(self) -> Iterator[None]:
        """A dyntools file whose tables or columns are missing says so, in one line."""
        try:
            yield
        except (duckdb.CatalogException, duckdb.BinderException) as error:
            first = str(error).strip().splitlines()[0]
            raise DamagedStoreError(
                f"{self.path} is a damaged dyntools database ({first}): move it away and run "
                "`dyntools compute` again (every result is recomputed from the checkpoints)"
            ) from None

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.exists:
            raise FileNotFoundError(
                f"no dyntools database at {self.path}: run `dyntools compute FOLDER` first"
            )
        if not self._ready:
            with connect(self.path, read_only=True, lock_timeout=self.lock_timeout) as con:
                version = schema.read_version(con, self.path)
                if version == schema.SCHEMA_VERSION:
                    self._ready = True
                    with self._damage_explained():
                        yield con
                    return
            if version is None:
                raise NoResultsError(
                    f"dyntools database {self.path} holds no results yet: "
                    "run `dyntools compute FOLDER` first"
                )
            schema.check_version(version, self.path, MIGRATIONS)
            with self._writer():  # migrates the older file, then reads go on read-only
                pass
        with (
            connect(self.path, read_only=True, lock_timeout=self.lock_timeout) as con,
            self._damage_explained(),
        ):
            yield con

    def _query(self, sql: str, values: Sequence[Any] = ()) -> pl.DataFrame:
        with self._reader() as con:
            frame: pl.DataFrame = con.sql(sql, params=list(values)).pl()
            return frame

    # -- writes ------------------------------------------------------------------------------

    @staticmethod
    def _bump_data_version(con: duckdb.DuckDBPyConnection) -> None:
        con.sql(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) "
            "WHERE key = 'data_version'"
        )

    @staticmethod
    def _drop_results(con: duckdb.DuckDBPyConnection, keys: str) -> None:
        """Delete every result of the checkpoints in the registered frame ``keys``."""
        for table in ("metrics", "histograms", "computed", "errors"):
            con.sql(f"DELETE FROM {table} USING {keys} k WHERE {on(CHECKPOINT, table, 'k')}")

    @staticmethod
    def _put(
        con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, *, replaced: bool = False
    ) -> None:
        """Insert a conformed frame, replacing stored rows with the same key.

        ``replaced``: the caller already deleted every stored row these keys could match.
        """
        spec = schema.TABLES[table]
        name = f"new_{table}"
        con.register(name, frame)
        if spec.primary_key:
            con.sql(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM {name}")
            return
        if not replaced:
            match = " AND ".join(
                f"{table}.{c} {'IS NOT DISTINCT FROM' if c in spec.nullable_keys else '='} k.{c}"
                for c in spec.key
            )
            con.sql(f"DELETE FROM {table} USING {name} k WHERE {match}")
        con.sql(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")

    def upsert_runs(self, runs: pl.DataFrame) -> None:
        """Insert or update runs: run_id, path, layout, config_json (optional, JSON text).

        A run's recorded network selection (``set_network_selection``) is kept.
        """
        frame = conform(runs, "runs")
        with self._writer() as con:
            con.register("incoming", frame)
            con.sql(
                "INSERT INTO runs BY NAME SELECT * EXCLUDE (network_selection) FROM incoming "
                "ON CONFLICT (run_id) DO UPDATE SET path = excluded.path, "
                "layout = excluded.layout, config_json = excluded.config_json"
            )

    def set_network_selection(self, selections: Mapping[str, str]) -> None:
        """Record, per run id, the hook-point selection (the ``params`` of its network-scope
        rows) that fits use for the paper features unless told otherwise."""
        if not selections:
            return
        with self._writer() as con:
            con.executemany(
                "UPDATE runs SET network_selection = ? WHERE run_id = ?",
                [[params, run_id] for run_id, params in selections.items()],
            )

    def set_modules(self, modules: pl.DataFrame) -> None:
        """Replace the recorded modules (run_id, hook_point, position, module_type) of the
        runs in ``modules``: each run's rebuilt model, in network order."""
        frame = conform(modules, "modules")
        if frame.is_empty():
            return
        with self._writer() as con:
            con.register("incoming", frame)
            stored = "SELECT * FROM modules WHERE run_id IN (SELECT run_id FROM incoming)"
            new = "SELECT * FROM incoming"
            ((changed,),) = con.sql(
                f"SELECT count(*) FROM (({stored} EXCEPT {new}) UNION ALL ({new} EXCEPT {stored}))"
            ).fetchall()
            if changed:
                con.sql("DELETE FROM modules WHERE run_id IN (SELECT run_id FROM incoming)")
                con.sql("INSERT INTO modules BY NAME SELECT * FROM incoming")
                self._bump_data_version(con)

    def upsert_checkpoints(self, checkpoints: pl.DataFrame) -> pl.DataFrame:
        """Insert or replace checkpoints; returns the (run_id, step) whose fingerprint changed.

        Columns: run_id, step, epoch (optional), path, size, mtime_ns, header_hash, fingerprint.
        Every stored result of a checkpoint whose fingerprint changed is deleted in the same
        transaction, so no value computed from the old file survives next to the new one.
        """
        frame = conform(checkpoints, "checkpoints")
        with self._writer() as con:
            con.register("incoming", frame)
            changed: pl.DataFrame = con.sql(
                "SELECT n.run_id, n.step FROM incoming n JOIN checkpoints o "
                "USING (run_id, step) WHERE o.fingerprint <> n.fingerprint ORDER BY ALL"
            ).pl()
            if changed.height:
                con.register("changed", changed)
                self._drop_results(con, "changed")
                self._bump_data_version(con)
            self._put(con, "checkpoints", frame)
        return changed

    def reconcile(self, root: Path, present: pl.DataFrame) -> int:
        """Mark the checkpoints of the runs below ``root`` that a scan did not find (``present``:
        run_id, step) as gone, and those found again as present; returns how many are gone.

        Their results stay in the store (for the record) and are left out of every read."""
        below = path_text(root.absolute())
        frame = present.select("run_id", "step")
        with self._writer() as con:
            con.register("present", frame)
            before = con.sql("SELECT count(*) FROM checkpoints WHERE gone").fetchall()[0][0]
            scope = "run_id IN (SELECT run_id FROM runs WHERE path = ? OR starts_with(path, ?))"
            con.execute(
                f"UPDATE checkpoints SET gone = (run_id, step) NOT IN "
                f"(SELECT (run_id, step) FROM present) WHERE {scope}",
                [below, below.rstrip("/") + "/"],
            )
            after = con.sql("SELECT count(*) FROM checkpoints WHERE gone").fetchall()[0][0]
            if after != before:
                self._bump_data_version(con)
        return int(after)

    def delete_checkpoints(self, keys: pl.DataFrame) -> None:
        """Forget checkpoints (run_id, step) and all their results, e.g. after the file went away."""
        if not {"run_id", "step"} <= set(keys.columns):
            raise ValueError(
                f"delete_checkpoints needs columns run_id and step, got {keys.columns}"
            )
        frame = keys.select(pl.col("run_id").cast(pl.String), pl.col("step").cast(pl.Int64))
        with self._writer() as con:
            con.register("gone", frame)
            self._drop_results(con, "gone")
            con.sql(
                f"DELETE FROM checkpoints USING gone k WHERE {on(CHECKPOINT, 'checkpoints', 'k')}"
            )
            self._bump_data_version(con)

    def write_results(
        self,
        *,
        metrics: pl.DataFrame | None = None,
        scalars: pl.DataFrame | None = None,
        histograms: pl.DataFrame | None = None,
        errors: pl.DataFrame | None = None,
        computed: pl.DataFrame | None = None,
    ) -> None:
        """Write one batch of results in one transaction (all of it or, if killed, none).

        Each ``computed`` row (run_id, step, hook_point, metric, params, fingerprint) marks one
        unit of work as done from that checkpoint version; the metric and histogram rows already
        stored for that unit are replaced by this batch's, so a recomputed unit leaves no stale
        tensors behind, and so are the errors of those units (of their kind and hook point, or
        of their whole checkpoint). Other rows replace stored rows with the same key; a key given
        twice keeps its last row. Errors replace an earlier error with the same (run_id, step,
        file, stage, what).
        """
        given = {
            "metrics": metrics,
            "histograms": histograms,
            "scalars": scalars,
            "errors": errors,
            "computed": computed,
        }
        batch = {name: conform(frame, name) for name, frame in given.items() if frame is not None}
        units = batch.get("computed")
        with self._writer() as con:
            if units is not None:
                con.register("units", units)
                for table in ("metrics", "histograms"):
                    con.sql(f"DELETE FROM {table} USING units k WHERE {on(UNIT, table, 'k')}")
                # The problems an earlier compute of these units met (or of their whole
                # checkpoint): the batch states again those that still hold.
                con.sql(queries.DELETE_UNIT_ERRORS)
            for name, frame in batch.items():
                # Rows of a unit deleted just above need no per-row delete (the common case).
                replaced = (
                    name in ("metrics", "histograms")
                    and units is not None
                    and frame.join(units, on=list(UNIT), how="anti").height == 0
                )
                self._put(con, name, frame, replaced=replaced)
            self._bump_data_version(con)

    def save_fit(self, config_hash: str, config: Mapping[str, Any], result_json: str) -> None:
        """Save an HMM fit under the hash of its full configuration (see frames.config_hash)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._writer() as con:
            con.execute(
                "INSERT OR REPLACE INTO hmm_fits VALUES (?, ?, ?, ?)",
                [config_hash, json.dumps(dict(config), sort_keys=True), result_json, now],
            )

    # -- reads -------------------------------------------------------------------------------

    def missing_work(self, candidates: pl.DataFrame) -> pl.DataFrame:
        """The candidate units not yet computed from the same checkpoint version, in input order
        (with the columns given).

        ``candidates`` has the columns of ``computed`` (params and inputs optional, '' for none)
        and, optionally, ``unrecorded_ok``: whether a unit stored without its inputs (before
        schema 6) still counts as done (default true). Before the first compute, everything is
        missing.
        """
        unrecorded_ok = (
            candidates["unrecorded_ok"]
            if "unrecorded_ok" in candidates.columns
            else pl.Series("unrecorded_ok", [True] * candidates.height)
        )
        given = [c for c in candidates.columns if c != "unrecorded_ok"]
        frame = conform(candidates.select(given), "computed", dedupe=False)
        if not self.exists:
            return frame.select(given)
        try:
            with self._reader() as con:
                con.register(
                    "candidates",
                    frame.with_columns(unrecorded_ok=unrecorded_ok).with_row_index("order_"),
                )
                missing: pl.DataFrame = con.sql(queries.MISSING).pl()
        except NoResultsError:
            return frame.select(given)
        return missing.select(given)

    def load_fit(self, config_hash: str) -> StoredFit | None:
        """The fit saved under ``config_hash``, or None if there is none (or no database yet)."""
        try:
            rows = self._query(queries.FIT, [config_hash]).rows() if self.exists else []
        except NoResultsError:
            return None
        if not rows:
            return None
        config_json, result_json, created_at = rows[0]
        return StoredFit(config_hash, json.loads(config_json), result_json, created_at)

    def list_fits(self) -> pl.DataFrame:
        """The saved fits, newest first: config_hash, config_json, created_at (UTC)."""
        empty = FITS.frame([]).select("config_hash", "config_json", "created_at")
        if not self.exists:
            return empty
        try:
            return self._query(queries.FITS)
        except NoResultsError:
            return empty

    def data_version(self) -> int:
        """A counter bumped by every write that changes results: part of a cache key."""
        return int(self._query(queries.DATA_VERSION).item())

    def read_runs(self) -> pl.DataFrame:
        """run_id, path, layout, config_json."""
        return self._query(queries.RUNS)

    def read_modules(self) -> pl.DataFrame:
        """run_id, hook_point, position, module_type: the modules of the runs whose model a
        compute rebuilt, in network order."""
        return self._query(queries.MODULES)

    def read_checkpoints(self, run_ids: Names = None) -> pl.DataFrame:
        """run_id, step, epoch, path, size, mtime_ns, header_hash, fingerprint."""
        return self._query(*queries.checkpoints(run_ids))

    def read_metrics(
        self,
        run_ids: Names = None,
        hook_points: Names = None,
        metrics: Names = None,
        kinds: Names = None,
        *,
        include_gone: bool = False,
    ) -> pl.DataFrame:
        """Tidy metric values: run_id, step, epoch, kind, scope, hook_point, tensor, head,
        metric, params, value; of checkpoints still on disk unless ``include_gone``."""
        return self._query(*queries.metrics(run_ids, hook_points, metrics, kinds, include_gone))

    def read_scalars(
        self, run_ids: Names = None, names: Names = None, *, include_gone: bool = False
    ) -> pl.DataFrame:
        """Training scalars: run_id, step, epoch, name, value (of checkpoints still on disk
        unless ``include_gone``)."""
        return self._query(*queries.scalars(run_ids, names, include_gone))

    def read_histograms(
        self, run_ids: Names = None, hook_points: Names = None, metrics: Names = None
    ) -> pl.DataFrame:
        """run_id, step, epoch, kind, hook_point, metric, params, edges, counts, underflow,
        overflow."""
        return self._query(*queries.histograms(run_ids, hook_points, metrics))

    def read_errors(self, run_ids: Names = None) -> pl.DataFrame:
        """run_id, step, file, stage, what, why, logged_at (UTC), oldest first."""
        return self._query(*queries.errors(run_ids))

    def summary(self) -> pl.DataFrame:
        """What is computed: per run_id, hook_point, metric, params the number of checkpoints,
        first_step, last_step, and the number of stored values and of NULL values."""
        return self._query(queries.SUMMARY)

    def tidy_table(self) -> pl.DataFrame:
        """Metrics and scalars as one table (the export format, see dyntools.store.export)."""
        return self._query(queries.TIDY)
