"""AppTest of the Compare fits page: two stored fits side by side and their correspondence."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import by_key, chart_data, direct, texts, vega_charts

from dyntools.hmm import FitConfig
from dyntools.pipeline.fits import fit_or_load
from dyntools.store import Store, locate_db
from dyntools.views.compare_fits import adjusted_rand_index, correspondence

pytestmark = pytest.mark.usefixtures("_config_home")


def test_two_fits_side_by_side_with_their_correspondence(fresh_folder: Path) -> None:
    from dyntools.pipeline import ComputeOptions, compute

    compute(fresh_folder, ComputeOptions(metrics=("l2", "spectral"), workers=1))
    app = direct("compare-fits", fresh_folder)
    assert "needs two stored fits" in texts(app)
    store = Store(locate_db(fresh_folder).path)
    three = fit_or_load(
        store, FitConfig(paper_features=False, features=(), n_states=3, restarts=2, max_states=3)
    )
    two = fit_or_load(store, FitConfig(n_states=2, restarts=2, max_states=3, seed=1))
    app = direct(
        "compare-fits",
        fresh_folder,
        **{"compare.a": three.config_hash[:12], "compare.b": two.config_hash[:12]},
    )
    assert not app.exception and not app.error
    assert by_key(app.selectbox, "compare.a").value == three.config_hash
    table = correspondence(three.result, two.result)
    heatmap = next(chart_data(c) for c in vega_charts(app) if "state in fit B" in c.proto.spec)
    assert (
        heatmap.sort("state_a", "state_b")["checkpoints"].to_list()
        == table["checkpoints"].to_list()
    )
    assert f"{adjusted_rand_index(table):.3f}" in texts(app)
    assert heatmap.group_by("state_a").agg(pl.col("share_of_a").sum())[
        "share_of_a"
    ].to_list() == pytest.approx([1.0] * 3)
