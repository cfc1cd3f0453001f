"""Hook points in the order of the network, and which of them are activation functions.

The order comes from the ``modules`` table (each run's rebuilt model, ``named_modules`` order);
hook points no rebuilt model has (runs whose model cannot be rebuilt) follow, in tree order
(numbers as numbers: ``layers.2`` before ``layers.10``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dyntools.hookpoints import tree_key
from dyntools.roles import is_activation_function


def network_order(hooks: Sequence[str], modules: pl.DataFrame) -> list[str]:
    """``hooks`` in the order of the network: the order of the run whose model has most of
    them, then what other runs' models add, in theirs; those no recorded model has come last,
    in tree order."""
    wanted = set(hooks)
    recorded = modules.filter(pl.col("hook_point").is_in(list(wanted))).sort("run_id", "position")
    by_run = recorded.group_by("run_id", maintain_order=True).agg("hook_point")
    ordered: dict[str, None] = {}
    for _, run_hooks in sorted(by_run.iter_rows(), key=lambda row: -len(row[1])):
        ordered.update(dict.fromkeys(run_hooks))
    unknown = sorted(wanted - set(ordered), key=tree_key)
    return [*ordered, *unknown]


def activation_functions(hooks: Sequence[str], modules: pl.DataFrame) -> list[str]:
    """The hook points among ``hooks`` that are activation functions in some run's model
    (post-activation outputs: the layers where dead units show), in ``hooks``' order."""
    found = {
        hook
        for hook, module_type in modules.select("hook_point", "module_type").iter_rows()
        if is_activation_function(module_type)
    }
    return [hook for hook in hooks if hook in found]


def module_types(modules: pl.DataFrame, run_id: str) -> dict[str, str]:
    """The class of each module of ``run_id``'s rebuilt model ({} before a compute recorded
    them, or when it cannot be rebuilt)."""
    run = modules.filter(pl.col("run_id") == run_id)
    return dict(run.select("hook_point", "module_type").iter_rows())
