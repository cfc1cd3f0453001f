"""Upgrades of database files written by older dyntools releases, one schema version at a time.

Each migration runs inside the caller's transaction: a file is upgraded whole or not at all.
Nothing computed is thrown away, except values whose definition changed: those are dropped with
their ``computed`` units, so the next compute recomputes exactly them (the incremental
machinery, not a wipe); every other value is served again without a recompute.
"""

from __future__ import annotations

import json

import duckdb
import polars as pl

from dyntools.metrics.kinds import MetricKind
from dyntools.metrics.registry import PAPER_FEATURES, REGISTRY
from dyntools.store.schema import TABLES, Migration

# Schema 1 spelled the network scope with placeholder names, and its paper-feature aggregate as
# a pseudo-metric.
_V1_ALL = "(all)"
_V1_POOLED = "(pooled)"
_V1_PAPER = "(paper features)"
_V1_PAPER_UNIT = "paper_features"
_V1_PAPER_HOOK = "__paper__"


def _kinds() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "metric": list(REGISTRY),
            "kind": [entry.hook_kind.value for entry in REGISTRY.values()],
        }
    )


def _paper_matrix_metrics() -> pl.DataFrame:
    pooled = {m.name for m in REGISTRY.values() if m.metric_kind is MetricKind.POOLED}
    return pl.DataFrame({"metric": [m for m in PAPER_FEATURES if m not in pooled]})


def _recreate(con: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
    """Replace ``table`` by the current declaration, filled by ``select`` over ``old``."""
    con.sql(f"ALTER TABLE {table} RENAME TO old")
    con.sql(TABLES[table].ddl())
    con.sql(f"INSERT INTO {table} BY NAME {select}")
    con.sql("DROP TABLE old")


def v1_to_v2(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 2: hook-point kinds, explicit scopes, heads and fused components as columns,
    reason codes, checkpoint dtypes.

    - metrics: ``kind`` from the metric registry; ``head`` parsed out of ``TENSOR[head H]``;
      the network rows (``(all)``/``(pooled)`` and ``(all)``/``(paper features)``) become
      ``scope = 'network'`` with hook point and tensor '' (the paper features' pooled six were
      copies of the pooled rows: one is kept);
    - computed: the ``paper_features`` unit becomes one unit per network-scope matrix metric;
    - histograms lose their always-empty ``tensor``; errors get a ``code``;
    - runs have no network selection until the next compute records one (schema 1's network
      values pooled every tensor: ``v5_to_v6`` drops them);
    - stored fits name the paper features by their metric (``__paper__/l1`` -> ``l1``) and
      state the axis their times are on.
    """
    con.register("metric_kinds", _kinds())
    con.register("paper_matrix", _paper_matrix_metrics())
    head = r"'\[head (\d+)\]$'"
    _recreate(
        con,
        "metrics",
        f"""
        SELECT run_id, step, coalesce(k.kind, 'weight') AS kind,
            CASE WHEN hook_point = '{_V1_ALL}' THEN 'network'
                 WHEN tensor = '' THEN 'hook_point' ELSE 'tensor' END AS scope,
            CASE WHEN hook_point = '{_V1_ALL}' THEN '' ELSE hook_point END AS hook_point,
            metric, value,
            CASE WHEN hook_point = '{_V1_ALL}' THEN '' ELSE regexp_replace(tensor, {head}, '') END
                AS tensor,
            CAST(nullif(regexp_extract(tensor, {head}, 1), '') AS BIGINT) AS head,
            '' AS component, params
        FROM old LEFT JOIN metric_kinds k USING (metric)
        WHERE NOT (hook_point = '{_V1_ALL}' AND tensor = '{_V1_PAPER}'
                   AND metric NOT IN (SELECT metric FROM paper_matrix))
        """,
    )
    _recreate(
        con,
        "computed",
        f"""
        SELECT run_id, step, coalesce(k.kind, 'weight') AS kind,
            CASE WHEN hook_point = '{_V1_ALL}' THEN '' ELSE hook_point END AS hook_point,
            u.metric, fingerprint, params
        FROM (
            SELECT * FROM old WHERE metric <> '{_V1_PAPER_UNIT}'
            UNION ALL
            SELECT o.* REPLACE (p.metric AS metric)
            FROM old o CROSS JOIN paper_matrix p WHERE o.metric = '{_V1_PAPER_UNIT}'
        ) u LEFT JOIN metric_kinds k USING (metric)
        """,
    )
    _recreate(con, "histograms", "SELECT * EXCLUDE (tensor), 'activation' AS kind FROM old")
    _recreate(
        con,
        "errors",
        "SELECT *, CASE WHEN stage = 'discover' THEN 'unreadable' ELSE 'failed' END AS code "
        "FROM old",
    )
    _recreate(con, "runs", "SELECT *, '' AS network_selection FROM old")
    # Schema 1 did not record a checkpoint's dtype: '' (unknown) until it is scanned again.
    _recreate(con, "checkpoints", "SELECT *, '' AS dtype FROM old")
    _recreate(con, "scalars", "SELECT * FROM old")
    fits = con.sql("SELECT config_hash, config_json, result_json FROM hmm_fits").fetchall()
    for key, config_json, result_json in fits:
        con.execute(
            "UPDATE hmm_fits SET config_json = ?, result_json = ? WHERE config_hash = ?",
            [_v2_fit_config(config_json), _v2_fit_result(result_json), key],
        )
    con.unregister("metric_kinds")
    con.unregister("paper_matrix")


def _v2_features(features: list[list[str]]) -> list[str]:
    return [f"{hook}/{metric}" for hook, metric in features]


def _v2_fit_config(text: str) -> str:
    config = json.loads(text)
    config["features"] = _v2_features(config.get("features", []))
    return json.dumps(config, sort_keys=True)


_V2_RENAMED = {
    "first_epoch": "first_time",
    "mean_epoch": "mean_time",
    "last_epoch": "last_time",
    "epochs_per_run": "spent_per_run",
    "convergence_epoch": "converged_at",
    "mean_epoch_visiting": "mean_visiting",
    "mean_epoch_not_visiting": "mean_not_visiting",
}


def _v2_fit_result(text: str) -> str:
    result = json.loads(text.replace(f'"{_V1_PAPER_HOOK}/', '"'))
    result["config"]["features"] = _v2_features(result["config"].get("features", []))
    # Schema 1 placed checkpoints at their epoch, or their step where none was stated.
    epochs = result.get("epochs", [])
    result["axis"] = "epoch" if epochs and all(e is not None for e in epochs) else "step"
    result["config"].setdefault("axis", "auto")
    for node in result["graph"]["nodes"]:
        for old, new in _V2_RENAMED.items():
            if old in node:
                node[new] = node.pop(old)
    convergence = result.get("convergence")
    if convergence is not None:
        convergence["converged_at"] = convergence.pop("convergence_epoch")
        for detour in convergence["detours"]:
            for old, new in _V2_RENAMED.items():
                if old in detour:
                    detour[new] = detour.pop(old)
    return json.dumps(result)


def v2_to_v3(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 3: HSIC values state how the probe entered their kernels (``inputs``/``labels``
    one-hot or values, PyGlow's ``output`` softmax or logits). Schema 2's did not (integer
    inputs were used as coordinates, PyGlow's Y was the logits): they are dropped and
    recomputed."""
    information = [m.name for m in REGISTRY.values() if m.metric_kind is MetricKind.INFORMATION]
    for table in ("metrics", "computed"):
        con.execute(
            f"DELETE FROM {table} WHERE params = '' AND list_contains(?, metric)", [information]
        )


def v3_to_v4(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 4: checkpoints record whether their file is gone from disk (none is, yet: the
    next compute's scan finds out)."""
    _add_column(con, "checkpoints", "gone BOOLEAN NOT NULL DEFAULT false")


def _add_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    """Add ``column`` (its DDL) unless the table has it: ``v1_to_v2`` recreated some tables with
    the current declaration, later columns included."""
    name = column.split()[0]
    found = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
        [table, name],
    ).fetchall()
    if found == [(0,)]:
        con.sql(f"ALTER TABLE {table} ADD COLUMN {column}")


def v4_to_v5(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 5: the modules of each run's rebuilt model, in network order (empty until the
    next compute records them; the app lists hook points by name until then)."""
    con.sql(TABLES["modules"].ddl())


def v5_to_v6(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 6: each computed unit records its inputs (a digest of its tensors' cuts, and of
    which tensors each pool of the network values takes), so a unit whose inputs are cut or
    selected otherwise by a later release is computed again.

    Errors name the units they belong to (``kind``, ``hook_point``), so a recompute of those
    units replaces them: the compute errors stored until now are attributed by their subject
    (the network values, or the deepest hook point it names); those of a whole checkpoint keep
    no hook point.

    Hook points whose stored values hold fused Q/K/V components (schemas 2 to 5 split some
    tensors that are not Q/K/V), or that met a problem, are computed again.

    Units stored until now recorded none (''): the next compute keeps a hook point's values
    where its tensors are cut as schema 1 cut them, and recomputes the others (Conv1d and
    Conv3d weights, fused Q/K/V) and every network value. Network values of schema 1's
    selection (every tensor pooled; their params name no preset) are dropped now, with their
    units, so no fit or export mistakes them for the paper's features.
    """
    _add_column(con, "computed", "inputs VARCHAR NOT NULL DEFAULT ''")
    _attribute_errors(con)
    # Schemas 2 to 5 split fused Q/K/V tensors by rules that changed since (an in_proj outside
    # attention was one), and some of their splits failed: the hook points whose values hold
    # q/k/v components, or met a problem, are computed again.
    con.sql(
        """
        DELETE FROM computed c WHERE c.kind = 'weight' AND c.hook_point <> '' AND (
            EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = c.run_id
                    AND m.hook_point = c.hook_point AND m.kind = 'weight' AND m.component <> '')
            OR EXISTS (SELECT 1 FROM errors e WHERE e.run_id = c.run_id AND e.step = c.step
                       AND e.kind = 'weight' AND e.hook_point = c.hook_point))
        """
    )
    # Values of a preset name it in their params (text written by ``params_key``).
    legacy = """NOT contains(params, '"preset"')"""
    con.sql(f"DELETE FROM metrics WHERE scope = 'network' AND {legacy}")
    con.sql(f"DELETE FROM computed WHERE hook_point = '' AND kind = 'weight' AND {legacy}")
    con.sql(
        "UPDATE runs SET network_selection = '' "
        + """WHERE NOT contains(network_selection, '"preset"')"""
    )


# The stage of a compute error -> the kind of the units it belongs to.
_STAGE_KINDS = {"weights": "weight", "activations": "activation"}


def _attribute_errors(con: duckdb.DuckDBPyConnection) -> None:
    """Give the compute errors of earlier schemas their units: the kind of their stage and the
    hook point their subject (``what``) starts with (the deepest of the run's), '' for the
    network values' (``network ...``), NULL for a whole checkpoint's."""
    _add_column(con, "errors", "kind VARCHAR")
    _add_column(con, "errors", "hook_point VARCHAR")
    hooks: dict[str, list[str]] = {}
    for run_id, hook in con.sql(
        "SELECT DISTINCT run_id, hook_point FROM metrics WHERE hook_point <> ''"
    ).fetchall():
        hooks.setdefault(run_id, []).append(hook)
    rows = con.sql(
        "SELECT rowid, run_id, stage, what FROM errors WHERE kind IS NULL AND stage IN "
        "('weights', 'activations')"
    ).fetchall()
    owners = pl.DataFrame(
        {
            "id": [row[0] for row in rows],
            "kind": [_STAGE_KINDS[stage] for _, _, stage, _ in rows],
            "hook_point": [
                "" if what.startswith("network ") else _owner(what, hooks.get(run_id, []))
                for _, run_id, _, what in rows
            ],
        },
        schema={"id": pl.Int64, "kind": pl.String, "hook_point": pl.String},
    )
    con.register("owners", owners)
    con.sql(
        "UPDATE errors SET kind = o.kind, hook_point = o.hook_point FROM owners o "
        "WHERE errors.rowid = o.id"
    )
    con.unregister("owners")


# What may follow a hook point's name in a subject: the end, a space, a tensor, a metric (v1).
_ENDS = ("", " ", ".", "/")


def _owner(what: str, hook_points: list[str]) -> str | None:
    """The deepest hook point ``what`` names first (``fc1 fc1.weight l1``, ``fc1.weight``,
    schema 1's ``pos_embed/normalized``), or None."""
    named = [h for h in hook_points if what.startswith(h) and what[len(h) : len(h) + 1] in _ENDS]
    return max(named, key=len) if named else None


# from_version -> the function that upgrades a file of that version to from_version + 1.
MIGRATIONS: dict[int, Migration] = {
    1: v1_to_v2,
    2: v2_to_v3,
    3: v3_to_v4,
    4: v4_to_v5,
    5: v5_to_v6,
}
