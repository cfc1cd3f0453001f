"""The chart specifications: what they draw, in which order, at which width, in which colours
(the same in the app and in exported files)."""

from __future__ import annotations

import json

import polars as pl

from dyntools import charts
from dyntools.charts.style import PAGE_WIDTH, styled
from dyntools.checkpoints.records import Axis
from dyntools.views.colors import CATEGORICAL
from dyntools.views.export import chart_bytes


def _scalars(names: list[str], runs: int = 2) -> pl.DataFrame:
    rows = [
        {"run_id": f"r{run}", "task": "t", "epoch": float(step), "step": step, "name": name,
         "value": 1.0 / (step + 1), "time": float(step)}
        for run in range(runs)
        for step in range(5)
        for name in names
    ]  # fmt: skip
    return pl.DataFrame(rows)


def _spec(chart: object) -> dict[str, object]:
    spec: dict[str, object] = chart.to_dict()  # type: ignore[attr-defined]
    return spec


def test_training_curves_draw_only_what_was_logged_with_two_strokes() -> None:
    chart = charts.training_curves(_scalars(["train_loss", "val_loss"]), Axis.EPOCH)
    assert chart is not None
    spec = _spec(chart)
    panels = spec["vconcat"]
    assert isinstance(panels, list) and len(panels) == 1  # no empty accuracy panel
    dash = json.dumps(spec)
    assert '"domain": ["train", "validation"]' in dash and '"range": [[1, 0], [8, 4]]' in dash
    # A log loss axis spans the values (not 0.1 to 1), and time ends at the last checkpoint.
    assert panels[0]["encoding"]["y"]["scale"] == {"type": "log", "nice": False}
    assert panels[0]["encoding"]["x"]["scale"] == {"nice": False}
    assert charts.training_curves(_scalars(["lr"]), Axis.EPOCH) is None


def _plane(runs: int) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"run_id": f"run{r}", "hook_point": hook, "step": s, "epoch": float(s),
             "time": float(s), "hsic_x": 0.5 + s / 10, "hsic_y": 0.3 + s / 20}
            for r in range(runs)
            for hook in ("fc2", "act1", "fc1")
            for s in range(3)
        ]
    )  # fmt: skip


def test_information_plane_wraps_runs_and_orders_layers_by_the_network() -> None:
    spec = _spec(charts.information_plane(_plane(3), Axis.EPOCH, ["fc1", "act1", "fc2"]))
    assert spec["columns"] == 2
    inner = spec["spec"]
    assert isinstance(inner, dict)
    # Two panels and their axes fit the page; the legend goes below.
    assert 2 * (inner["width"] + 70) <= PAGE_WIDTH
    color = json.dumps(spec)
    assert '"sort": ["fc1", "act1", "fc2"]' in color


def test_metric_panels_follow_the_layer_order() -> None:
    curves = pl.DataFrame(
        {
            "run_id": ["a"] * 4,
            "hook_point": ["fc2", "fc2", "fc1", "fc1"],
            "series": ["fc2", "fc2", "fc1", "fc1"],
            "metric": ["l2"] * 4,
            "step": [0, 1, 0, 1],
            "epoch": [0.0, 1.0, 0.0, 1.0],
            "time": [0.0, 1.0, 0.0, 1.0],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    spec = _spec(charts.metric_curves(curves, Axis.STEP, series_order=["fc2", "fc1"]))
    assert spec["facet"] == {
        "field": "panel",
        "sort": ["fc2 · l2", "fc1 · l2"],
        "title": None,
        "type": "nominal",
    }


def test_exports_carry_the_apps_palette() -> None:
    chart = styled(charts.information_plane(_plane(2), Axis.EPOCH))
    spec = chart.to_dict()
    assert spec["config"]["range"]["category"] == list(CATEGORICAL)
    assert spec["config"]["legend"]["orient"] == "bottom"
    svg = chart_bytes(spec, "svg")[0].decode().lower()
    assert CATEGORICAL[0].lower() in svg and CATEGORICAL[1].lower() in svg
    assert "#4c78a8" not in svg  # Vega's default palette (what Streamlit's theme replaced)


def test_activation_statistics_name_the_time_of_their_axis_in_tooltips() -> None:
    stats = pl.DataFrame(
        {"run_id": ["r0", "r0"], "hook_point": ["fc1", "fc1"], "step": [0, 8], "epoch": [None, None],
         "time": [0.0, 8.0], "act_mean": [0.1, 0.2], "act_std": [1.0, 1.1],
         "dead_fraction": [0.0, 0.5]}
    )  # fmt: skip
    spec = json.dumps(_spec(charts.activation_stats(stats, Axis.STEP)))
    assert '{"field": "time", "title": "step", "type": "quantitative"}' in spec
    assert '{"field": "epoch"' not in spec
