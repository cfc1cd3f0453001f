from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dyntools.hmm.features import PAPER_FEATURES, align_scalars, build_feature_table
from dyntools.metrics import Feature


def tidy(rows: list[tuple[str, int, str, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": [r[0] for r in rows],
            "step": [r[1] for r in rows],
            "epoch": [r[1] // 10 for r in rows],
            "hook_point": [r[2] for r in rows],
            "metric": [r[3] for r in rows],
            "value": [r[4] for r in rows],
        },
        schema={
            "run_id": pl.Utf8,
            "step": pl.Int64,
            "epoch": pl.Int64,
            "hook_point": pl.Utf8,
            "metric": pl.Utf8,
            "value": pl.Float64,
        },
    )


def grid(runs: dict[str, int], columns: dict[str, object], seed: int = 0) -> pl.DataFrame:
    """Rows for every run x step x column; a column is a function (rng, run, n) -> values."""
    rng = np.random.default_rng(seed)
    rows = []
    for run, n in runs.items():
        for name, make in columns.items():
            feature = Feature.parse(name)
            hook, metric = feature.hook_point, feature.metric
            values = make(rng, run, n)  # type: ignore[operator]
            rows += [(run, 10 * t, hook, metric, values[t]) for t in range(n)]
    return tidy(rows)


def noise(rng: np.random.Generator, run: str, n: int) -> list[float]:
    return list(rng.normal(size=n))


def test_rows_are_sorted_by_step_and_zscored_per_run() -> None:
    frame = grid({"b": 5, "a": 4}, {"h/x": noise, "h/y": noise}).sample(fraction=1.0, seed=1)
    table = build_feature_table(frame, normalize="per-run")
    assert table.run_ids == ("a", "b")
    assert table.lengths == (4, 5)
    assert list(table.steps) == [0, 10, 20, 30, 0, 10, 20, 30, 40]
    for rows in table.run_slices():
        raw = table.raw[rows]
        expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)
        np.testing.assert_allclose(table.values[rows], expected)


def test_global_zscore_uses_all_rows_and_is_the_default() -> None:
    table = build_feature_table(grid({"a": 4, "b": 6}, {"h/x": noise}))
    assert table.normalize == "global"
    np.testing.assert_allclose(table.values.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(table.values.std(axis=0), 1.0)


def test_constant_column_is_dropped_with_a_notice() -> None:
    def flat_in_b(rng: np.random.Generator, run: str, n: int) -> list[float]:
        return [3.0] * n if run == "b" else list(rng.normal(size=n))

    table = build_feature_table(
        grid({"a": 5, "b": 5}, {"h/x": noise, "h/flat": flat_in_b}), normalize="per-run"
    )
    assert table.columns == ("h/x",)
    (notice,) = table.notices
    assert notice.kind == "constant-column" and notice.subject == "h/flat"
    assert "'b'" in notice.message and "constant" in notice.message
    # Globally the column varies (it is noise in run a), so a global z-score keeps it.
    glob = build_feature_table(
        grid({"a": 5, "b": 5}, {"h/x": noise, "h/flat": flat_in_b}), normalize="global"
    )
    assert glob.columns == ("h/flat", "h/x")


def test_missing_values_are_reported_not_hidden() -> None:
    def holes(rng: np.random.Generator, run: str, n: int) -> list[float | None]:
        values: list[float | None] = list(rng.normal(size=n))
        if run == "a":
            values[1] = None
            values[2] = float("nan")
        return values

    table = build_feature_table(grid({"a": 5, "b": 5}, {"h/x": noise, "h/holes": holes}))
    assert table.columns == ("h/x",)
    (notice,) = table.notices
    assert notice.kind == "missing-values"
    assert "2 of 10 values missing" in notice.message and "'a'" in notice.message


def test_single_checkpoint_run() -> None:
    frame = grid({"a": 5, "b": 1}, {"h/x": noise})
    per_run = build_feature_table(frame, normalize="per-run")
    assert per_run.run_ids == ("a",)
    assert per_run.notices[0].kind == "short-run" and per_run.notices[0].subject == "b"
    glob = build_feature_table(frame, normalize="global")
    assert glob.run_ids == ("a", "b") and glob.lengths == (5, 1) and not glob.notices


def test_paper_features_and_scalars() -> None:
    columns = {m: noise for m in PAPER_FEATURES}  # network values: hook point ''
    columns["blocks.0.attn/l2"] = noise
    frame = grid({"a": 6}, columns)
    scalars = pl.DataFrame(
        {
            "run_id": ["a"] * 6,
            "step": [10 * t for t in range(6)],
            "epoch": list(range(6)),
            "name": ["train_loss"] * 6,
            "value": [1.0, 0.8, 0.7, 0.5, 0.4, 0.1],
        }
    )
    table = build_feature_table(frame, paper=True, scalars=scalars, scalar_features=["train_loss"])
    assert table.columns == (*PAPER_FEATURES, "scalar:train_loss")
    picked = build_feature_table(frame, features=[Feature("blocks.0.attn", "l2")])
    assert picked.columns == ("blocks.0.attn/l2",)
    aligned = align_scalars(table, scalars)
    np.testing.assert_allclose(aligned["train_loss"], [1.0, 0.8, 0.7, 0.5, 0.4, 0.1])


def test_errors_name_the_problem() -> None:
    frame = grid({"a": 5}, {"h/x": noise})
    with pytest.raises(LookupError, match="none of the features"):
        build_feature_table(frame, features=[Feature("h", "nope")])
    with pytest.raises(LookupError, match="runs \\['zz'\\] have no metrics"):
        build_feature_table(frame, runs=["zz"])
    with pytest.raises(ValueError, match="unknown normalization"):
        build_feature_table(frame, normalize="minmax")
    doubled = pl.concat([frame, frame.head(1)])
    with pytest.raises(ValueError, match="more than once"):
        build_feature_table(doubled)
