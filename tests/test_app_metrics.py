"""AppTest of the Metrics page: curves from the store, log scale, HMM state background."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from apptest_helpers import PAGE_FILES, by_key, chart_data, direct, routed, texts, vega_charts

from dyntools.checkpoints.records import Axis
from dyntools.hmm import FitConfig, fit_result_from_json
from dyntools.pipeline.fits import fit_or_load
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.runner import compute
from dyntools.store import Store, locate_db
from dyntools.views.metrics import brushed_range, curve_frame, range_summary, time_range
from dyntools.views.time import with_time

pytestmark = pytest.mark.usefixtures("_config_home")
RUNS = ("sparse-parity/seed0", "sparse-parity/seed1")


def _values(chart_frame: pl.DataFrame) -> pl.DataFrame:
    return chart_frame.filter(pl.col("layer") == "value")


def test_curves_are_the_stored_values(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder)
    assert not app.exception
    assert app.title[0].value == "Metrics"
    assert by_key(app.multiselect, "metrics.hooks").value == ["fc1", "fc2"]
    assert by_key(app.multiselect, "metrics.metrics").value == ["l2", "spectral"]
    data = _values(chart_data(vega_charts(app)[0]))
    stored = Store(locate_db(analysed_folder).path).read_metrics(
        hook_points=["fc1"], metrics=["l2"]
    )
    expected = stored.filter(pl.col("scope") == "hook_point").sort("run_id", "step")
    got = data.filter((pl.col("hook_point") == "fc1") & (pl.col("metric") == "l2")).sort(
        "run_id", "step"
    )
    assert got["value"].to_list() == pytest.approx(expected["value"].to_list())
    assert got["epoch"].to_list() == pytest.approx(expected["epoch"].to_list())
    assert set(data["run_id"]) == {"sparse-parity/seed0", "sparse-parity/seed1"}


def test_log_scale_and_metric_choice(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder)
    by_key(app.multiselect, "metrics.metrics").set_value(["stable_rank"])
    by_key(app.toggle, "metrics.log").set_value(True).run()
    chart = vega_charts(app)[0]
    assert '"type": "log"' in chart.proto.spec or '"type":"log"' in chart.proto.spec
    assert set(_values(chart_data(chart))["metric"]) == {"stable_rank"}
    assert app.session_state["dyntools.metrics"] == ["stable_rank"]
    assert app.query_params["metrics"] == "stable_rank"


def test_background_coloured_by_the_current_fit(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    fit_hash = app.session_state["dyntools.fit"]
    assert fit_hash
    app.switch_page(PAGE_FILES["metrics"]).run()
    assert not app.exception
    background = by_key(app.selectbox, "metrics.background")
    assert background.value == "sparse-parity/seed0"
    chart = vega_charts(app)[0]
    states = chart_data(chart).filter(pl.col("layer") == "state")
    assert set(states["state_run"]) == {"sparse-parity/seed0"}
    assert states["state"].str.starts_with("S").all()
    assert "fill" in chart.proto.spec
    # Per panel, the state intervals tile the run's epochs without gaps.
    panel = states.filter(pl.col("panel") == states["panel"][0]).sort("start")
    assert panel["start"][1:].to_list() == panel["end"][:-1].to_list()
    background.set_value("(none)").run()
    assert chart_data(vega_charts(app)[0]).filter(pl.col("layer") == "state").is_empty()


def test_latest_stored_fit_colours_a_new_session(fresh_folder: Path) -> None:
    compute(fresh_folder, ComputeOptions(metrics=("l2",), workers=1))
    app = routed("metrics", fresh_folder)
    assert "Fit latent states" in texts(app)  # no fit yet
    store = Store(locate_db(fresh_folder).path)
    assert store.list_fits().is_empty()
    older = fit_or_load(store, FitConfig(runs=RUNS[:1], max_states=2, restarts=1))
    newer = fit_or_load(store, FitConfig(runs=RUNS, max_states=2, restarts=1, seed=5))
    assert store.list_fits()["config_hash"].to_list() == [newer.config_hash, older.config_hash]
    app = routed("metrics", fresh_folder)
    colour = by_key(app.radio, "metrics.colour")
    assert newer.config_hash[:12] in colour.label and "latest" in colour.label
    assert by_key(app.selectbox, "metrics.background").value == "sparse-parity/seed0"
    app = routed("metrics", fresh_folder, runs="sparse-parity/seed0")
    assert newer.config_hash[:12] in by_key(app.radio, "metrics.colour").label


def test_page_runs_on_its_own(analysed_folder: Path) -> None:
    app = direct("metrics", analysed_folder, runs="sparse-parity/seed1", weights="fc2")
    assert not app.exception
    data = _values(chart_data(vega_charts(app)[0]))
    assert set(data["run_id"]) == {"sparse-parity/seed1"}
    assert set(data["hook_point"]) == {"fc2"} and set(data["kind"]) == {"weight"}
    # The page on its own draws the stored values, as it does through the router.
    stored = Store(locate_db(analysed_folder).path).read_metrics(
        run_ids=["sparse-parity/seed1"], hook_points=["fc2"], metrics=["l2"]
    )
    expected = stored.filter(pl.col("scope") == "hook_point").sort("step")["value"]
    got = data.filter(pl.col("metric") == "l2").sort("step")["value"]
    assert got.to_list() == pytest.approx(expected.to_list())


def test_brush_selection_narrows_the_summary() -> None:
    assert brushed_range({"time": [30.0, 10.0]}) == (10.0, 30.0)
    assert brushed_range({}) is None
    assert brushed_range(None) is None
    metrics = pl.DataFrame(
        {
            "run_id": ["a"] * 4,
            "step": [0, 1, 2, 3],
            "epoch": [0, 10, 20, 30],
            "kind": ["weight"] * 4,
            "scope": ["hook_point"] * 4,
            "hook_point": ["h"] * 4,
            "tensor": [""] * 4,
            "metric": ["l2"] * 4,
            "params": [""] * 4,
            "value": [1.0, 2.0, 4.0, 8.0],
        }
    )
    shown = time_range(with_time(curve_frame(metrics), Axis.EPOCH), 10.0, 20.0)
    row = range_summary(shown).row(0, named=True)
    assert (row["first"], row["last"], row["mean"]) == (2.0, 4.0, 3.0)
    assert (row["from"], row["to"]) == (10.0, 20.0)
    # The same span read as steps holds other checkpoints.
    shown = time_range(with_time(curve_frame(metrics), Axis.STEP), 1.0, 3.0)
    row = range_summary(shown).row(0, named=True)
    assert (row["first"], row["last"], row["from"], row["to"]) == (2.0, 8.0, 1.0, 3.0)


def test_time_axis_switch(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder)
    radio = by_key(app.radio, "metrics.axis")
    assert radio.options == ["step", "epoch"] and radio.value == "epoch"
    data = _values(chart_data(vega_charts(app)[0]))
    assert data["time"].to_list() == pytest.approx(data["epoch"].cast(pl.Float64).to_list())
    radio.set_value("step").run()
    assert app.query_params["axis"] == "step"
    data = _values(chart_data(vega_charts(app)[0]))
    assert data["time"].to_list() == pytest.approx(data["step"].cast(pl.Float64).to_list())
    assert '"title": "step"' in vega_charts(app)[0].proto.spec.replace('":"', '": "')
    assert "all steps" in texts(app)


def test_background_only_on_the_fit_axis(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    assert app.session_state["dyntools.axis"] == "epoch"  # the fit's axis, shared
    app.switch_page(PAGE_FILES["metrics"]).run()
    by_key(app.radio, "metrics.axis").set_value("step").run()
    assert not [s for s in app.selectbox if s.key == "metrics.background"]
    assert "places states on the epoch axis" in texts(app)


def test_view_options_come_back_from_the_url_and_layers_are_in_network_order(
    analysed_folder: Path,
) -> None:
    app = routed(
        "metrics", analysed_folder, **{"metrics.log": "true", "metrics.kind": "activations"}
    )
    assert by_key(app.toggle, "metrics.log").value is True
    assert by_key(app.radio, "metrics.kind").value == "activation"
    assert by_key(app.multiselect, "metrics.hooks").options == ["fc1", "act1", "fc2"]


def test_each_runs_points_coloured_by_its_own_states(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    fit_hash = app.session_state["dyntools.fit"]
    app.switch_page(PAGE_FILES["metrics"]).run()
    by_key(app.radio, "metrics.colour").set_value("by each run's state").run()
    assert not app.exception
    data = chart_data(vega_charts(app)[0])
    result = fit_result_from_json(
        json.loads(Store(locate_db(analysed_folder).path).load_fit(fit_hash).result_json)
    )
    paths = result.paths()
    steps = dict(
        zip(result.run_ids, np.split(result.steps, np.cumsum(result.lengths)[:-1]), strict=True)
    )
    for run in ("sparse-parity/seed0", "sparse-parity/seed1"):
        shown = data.filter(pl.col("run_id") == run).unique(["step"]).sort("step")
        expected = {int(s): f"S{int(k)}" for s, k in zip(steps[run], paths[run], strict=True)}
        assert shown["state"].to_list() == [expected[s] for s in shown["step"].to_list()]


def test_per_tensor_curves_and_smoothing(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder, weights="fc1", metrics="l2")
    by_key(app.radio, "metrics.scope").set_value("each tensor")
    by_key(app.slider, "metrics.smoothing").set_value(0.5).run()
    assert not app.exception
    data = chart_data(vega_charts(app)[0]).filter(pl.col("layer") == "value")
    assert set(data["series"]) == {"fc1.weight"}
    one = data.filter(pl.col("run_id") == "sparse-parity/seed0").sort("step")
    # The first point is itself; the next is the debiased average of the two.
    v0, v1 = one["value"][0], one["value"][1]
    assert one["smoothed"][0] == pytest.approx(v0)
    assert one["smoothed"][1] == pytest.approx((0.5 * v0 + v1) / 1.5)
