"""AppTest of the Information plane page: HSIC trajectories per layer, variant selector."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import by_key, chart_data, direct, routed, vega_charts

from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")


def _stored(folder: Path, metric: str) -> pl.DataFrame:
    frame = Store(locate_db(folder).path).read_metrics(
        run_ids=["sparse-parity/seed0"], hook_points=["fc1"], metrics=[metric]
    )
    return frame.sort("step")


def test_trajectories_are_the_stored_hsic_values_in_epoch_order(analysed_folder: Path) -> None:
    app = routed("information-plane", analysed_folder)
    assert not app.exception
    assert app.title[0].value == "Information plane"
    chart = vega_charts(app)[0]
    data = chart_data(chart)
    fc1 = data.filter((pl.col("run_id") == "sparse-parity/seed0") & (pl.col("hook_point") == "fc1"))
    assert fc1["epoch"].to_list() == sorted(fc1["epoch"].to_list())
    assert fc1["hsic_x"].to_list() == pytest.approx(_stored(analysed_folder, "hsic_x")["value"])
    assert fc1["hsic_y"].to_list() == pytest.approx(_stored(analysed_folder, "hsic_y")["value"])
    assert '"order"' in chart.proto.spec


def test_variant_selector_switches_to_pyglow(analysed_folder: Path) -> None:
    app = direct("information-plane", analysed_folder)
    by_key(app.radio, "info.variant").set_value("pyglow").run()
    assert not app.exception
    fc1 = chart_data(vega_charts(app)[0]).filter(
        (pl.col("run_id") == "sparse-parity/seed0") & (pl.col("hook_point") == "fc1")
    )
    expected = _stored(analysed_folder, "hsic_x_pyglow")["value"].to_list()
    assert fc1["hsic_x"].to_list() == pytest.approx(expected)
