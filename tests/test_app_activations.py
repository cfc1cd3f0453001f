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
