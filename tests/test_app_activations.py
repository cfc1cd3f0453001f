"""AppTest of the Activations page: colorful-dimension heatmaps and activation statistics."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import by_key, chart_data, direct, routed, texts, vega_charts

from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")


def test_heatmap_holds_the_stored_histograms(analysed_folder: Path) -> None:
    app = routed("activations", analysed_folder)
    assert not app.exception
    assert app.title[0].value == "Activations"
    assert by_key(app.multiselect, "acts.runs").value == [
        "sparse-parity/seed0",
        "sparse-parity/seed1",
    ]
    # The layers start from the activation functions' outputs (where units die), in network
    # order: the MLP's ReLU, not its Linear layers.
    assert by_key(app.multiselect, "acts.hooks").value == ["act1"]
    assert by_key(app.multiselect, "acts.hooks").options == ["fc1", "act1", "fc2"]
    heatmap, stats = (chart_data(c) for c in vega_charts(app))
    stored = Store(locate_db(analysed_folder).path).read_histograms(
        run_ids=["sparse-parity/seed1"], hook_points=["act1"], metrics=["histogram"]
    )
    first = stored.sort("step").row(0, named=True)
    cells = heatmap.filter(
        (pl.col("run_id") == "sparse-parity/seed1")
        & (pl.col("hook_point") == "act1")
        & (pl.col("step") == first["step"])
    ).sort("bin_low", nulls_last=True)
    counts = [*first["counts"], first["overflow"]]
    assert cells["count"].to_list() == counts
    assert cells["log1p_count"].to_list() == pytest.approx([math.log1p(c) for c in counts])
    assert cells["bin"].to_list()[-1] == ">= 10"
    # Statistics: one row per (run, layer, checkpoint) with the stored values.
    mean = Store(locate_db(analysed_folder).path).read_metrics(
        run_ids=["sparse-parity/seed0"], hook_points=["act1"], metrics=["dead_fraction"]
    )
    got = stats.filter(
        (pl.col("run_id") == "sparse-parity/seed0") & (pl.col("hook_point") == "act1")
    )
    assert got.sort("step")["dead_fraction"].to_list() == pytest.approx(
        mean.sort("step")["value"].to_list()
    )
    assert "Dead fraction" in texts(app)


def test_layer_choice_is_shared_and_runs_compare_side_by_side(analysed_folder: Path) -> None:
    app = direct("activations", analysed_folder)
    by_key(app.multiselect, "acts.hooks").set_value(["fc2"]).run()
    heatmap = chart_data(vega_charts(app)[0])
    assert set(heatmap["hook_point"]) == {"fc2"}
    assert '"column"' in vega_charts(app)[0].proto.spec
    assert "fc2" in app.session_state["dyntools.activation_hooks"]
    assert app.query_params["activations"].startswith("fc2")


def test_weights_only_folder_says_how_to_get_activations(fresh_folder: Path) -> None:
    from dyntools.pipeline.options import ComputeOptions
    from dyntools.pipeline.runner import compute

    compute(fresh_folder, ComputeOptions(metrics=("l2",), workers=1))
    app = routed("activations", fresh_folder)
    assert not app.exception
    assert "--activations" in app.info[0].value


def test_other_bins_computed_from_the_page_and_shown(fresh_folder: Path) -> None:
    from dyntools.pipeline import ComputeOptions, compute

    metrics = ("histogram", "act_mean", "act_std", "dead_fraction")
    compute(fresh_folder, ComputeOptions(metrics=metrics, activations=True, workers=1))
    app = routed("activations", fresh_folder, runs="sparse-parity/seed0", activations="act1")
    assert "acts.bins" not in [box.key for box in app.selectbox]  # one way only so far
    by_key(app.number_input, "acts.new_bins").set_value(8)
    by_key(app.number_input, "acts.new_high").set_value(4.0)
    app.button[0].click().run(timeout=120)  # the form's submit button
    assert not app.exception
    assert "Computed 7 checkpoints" in texts(app)
    box = by_key(app.selectbox, "acts.bins")
    assert box.value == '{"bins":8,"high":4.0,"low":0.0,"on":"abs"}'
    assert box.format_func(box.value) == "8 bins of |a| over [0, 4)"
    heatmap = chart_data(vega_charts(app)[0])
    # Only the run and layer shown were computed; the heatmap shows the new bins.
    assert set(heatmap["run_id"]) == {"sparse-parity/seed0"}
    assert heatmap.filter(pl.col("step") == 0)["bin"].to_list()[-1] == ">= 4"
    assert heatmap.filter(pl.col("step") == 0).height == 8 + 1
    stored = Store(locate_db(fresh_folder).path).read_histograms()
    new = stored.filter(pl.col("params").str.contains('"bins":8'))
    assert set(new["run_id"]) == {"sparse-parity/seed0"} and set(new["hook_point"]) == {"act1"}
