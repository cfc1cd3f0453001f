"""The SQL of the store's reads, kept apart from the code that opens files and writes.

Each function returns (query, parameter values); filters given as None do not filter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Query = tuple[str, list[Any]]
Names = Sequence[str] | None

# Columns that tie a result row to the unit of work that produced it.
UNIT = ("run_id", "step", "hook_point", "metric", "params")
CHECKPOINT = ("run_id", "step")


def on(columns: Sequence[str], left: str, right: str) -> str:
    """A join condition: every column equal between two aliases."""
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in columns)


def where(filters: Mapping[str, Names], alias: str) -> Query:
    """A WHERE clause keeping rows whose column value is in the given list."""
    clauses, values = [], []
    for column, wanted in filters.items():
        if wanted is not None:
            clauses.append(f"list_contains(?::VARCHAR[], {alias}.{column})")
            values.append(list(wanted))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), values


# A unit is done when it was computed from the same checkpoint version and the same inputs; one
# stored before schema 6 recorded no inputs and stands where they are cut as they always were.
MISSING = (
    "SELECT c.* EXCLUDE (order_, unrecorded_ok) FROM candidates c ANTI JOIN computed d "
    f"ON {on((*UNIT, 'fingerprint'), 'c', 'd')} "
    "AND (d.inputs = c.inputs OR (d.inputs = '' AND c.unrecorded_ok)) ORDER BY c.order_"
)
DELETE_UNIT_ERRORS = (
    "DELETE FROM errors e USING units k WHERE e.run_id = k.run_id AND e.step = k.step "
    "AND e.kind = k.kind AND (e.hook_point IS NULL OR e.hook_point = k.hook_point)"
)
FIT = "SELECT config_json, result_json, created_at FROM hmm_fits WHERE config_hash = ?"
FITS = "SELECT config_hash, config_json, created_at FROM hmm_fits ORDER BY created_at DESC"
DATA_VERSION = "SELECT value FROM meta WHERE key = 'data_version'"
RUNS = "SELECT * FROM runs ORDER BY run_id"


MODULES = "SELECT * FROM modules ORDER BY run_id, position"


def checkpoints(run_ids: Names) -> Query:
    clause, values = where({"run_id": run_ids}, "c")
    return f"SELECT * FROM checkpoints c {clause} ORDER BY run_id, step", values


# Results of checkpoints whose file is gone are kept, and left out of every read by default.
_PRESENT = "NOT coalesce(c.gone, false)"


def _present(clause: str, include_gone: bool) -> str:
    if include_gone:
        return clause
    return f"{clause} AND {_PRESENT}" if clause else f"WHERE {_PRESENT}"


def metrics(
    run_ids: Names,
    hook_points: Names,
    names: Names,
    kinds: Names = None,
    include_gone: bool = False,
) -> Query:
    clause, values = where(
        {"run_id": run_ids, "hook_point": hook_points, "metric": names, "kind": kinds}, "m"
    )
    clause = _present(clause, include_gone)
    return (
        "SELECT m.run_id, m.step, c.epoch, m.kind, m.scope, m.hook_point, m.tensor, m.head, "
        "m.component, m.metric, m.params, m.value "
        f"FROM metrics m LEFT JOIN checkpoints c USING (run_id, step) {clause} "
        "ORDER BY m.run_id, m.kind, m.hook_point, m.tensor, m.head NULLS FIRST, m.component, "
        "m.metric, m.params, m.step",
        values,
    )


def scalars(run_ids: Names, names: Names, include_gone: bool = False) -> Query:
    clause, values = where({"run_id": run_ids, "name": names}, "s")
    clause = _present(clause, include_gone)
    return (
        "SELECT s.* FROM scalars s LEFT JOIN checkpoints c USING (run_id, step) "
        f"{clause} ORDER BY s.run_id, s.name, s.step",
        values,
    )


def histograms(run_ids: Names, hook_points: Names, names: Names) -> Query:
    clause, values = where({"run_id": run_ids, "hook_point": hook_points, "metric": names}, "h")
    clause = _present(clause, include_gone=False)
    return (
        "SELECT h.run_id, h.step, c.epoch, h.* EXCLUDE (run_id, step) "
        f"FROM histograms h LEFT JOIN checkpoints c USING (run_id, step) {clause} "
        "ORDER BY h.run_id, h.hook_point, h.metric, h.params, h.step",
        values,
    )


def errors(run_ids: Names) -> Query:
    clause, values = where({"run_id": run_ids}, "e")
    return f"SELECT * FROM errors e {clause} ORDER BY logged_at, file", values


SUMMARY = """
    WITH done AS (
        SELECT d.run_id, d.kind, d.hook_point, d.metric, d.params, count(*) AS checkpoints,
               min(d.step) AS first_step, max(d.step) AS last_step,
               count(*) FILTER (WHERE c.gone) AS gone
        FROM computed d LEFT JOIN checkpoints c USING (run_id, step) GROUP BY ALL),
    vals AS (
        SELECT run_id, hook_point, metric, params, count(*) AS "values",
               count(*) - count(value) AS null_values
        FROM metrics GROUP BY ALL)
    SELECT d.*, coalesce(v."values", 0) AS "values", coalesce(v.null_values, 0) AS null_values
    FROM done d LEFT JOIN vals v USING (run_id, hook_point, metric, params)
    ORDER BY run_id, kind, hook_point, metric, params
"""

# The export format: see dyntools.store.export for the columns.
TIDY = """
    SELECT 'metric' AS source, m.run_id, m.step, c.epoch, m.kind, m.scope, m.hook_point,
           m.tensor, m.head, m.component, m.metric AS name, m.params, m.value
    FROM metrics m LEFT JOIN checkpoints c USING (run_id, step)
    WHERE NOT coalesce(c.gone, false)
    UNION ALL
    SELECT 'scalar', s.run_id, s.step, s.epoch, '', '', '', '', NULL, '', s.name, '', s.value
    FROM scalars s LEFT JOIN checkpoints c USING (run_id, step)
    WHERE NOT coalesce(c.gone, false)
    ORDER BY run_id, source, kind, hook_point, tensor, head NULLS FIRST, component, name, params,
             step
"""
