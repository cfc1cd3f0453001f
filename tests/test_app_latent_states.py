"""AppTest of the Latent states page: live refits, model selection, timeline, graph clicks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import by_key, chart_data, direct, routed, texts, vega_charts

from dyntools.hmm import FitConfig
from dyntools.latent import fit_or_load
from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")
RUNS = ("sparse-parity/seed0", "sparse-parity/seed1")


def test_fit_through_the_widgets_matches_the_engine(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    by_key(app.number_input, "latent.seed").set_value(11)
    by_key(app.slider, "latent.max_states").set_value(4)
    by_key(app.slider, "latent.restarts").set_value(2).run()
    assert not app.exception
    assert "fitted and stored" in app.success[0].value
    # The same configuration through the engine is read back from the store, with the same
    # selection table as the chart shows.
    config = FitConfig(runs=RUNS, paper_features=True, max_states=4, restarts=2, seed=11)
    outcome = fit_or_load(Store(locate_db(analysed_folder).path), config)
    assert outcome.from_store
    assert app.session_state["dyntools.fit"] == outcome.config_hash
    selection = chart_data(vega_charts(app)[0])
    bic = selection.filter(pl.col("criterion") == "BIC").sort("n_states")
    assert bic["n_states"].to_list() == [1, 2, 3, 4]
    assert bic["value"].to_list() == pytest.approx([row.bic for row in outcome.result.selection])
    # The timeline covers each run's checkpoints with the decoded states.
    timeline = chart_data(vega_charts(app)[1])
    paths = outcome.result.paths()
    for run in RUNS:
        spans = timeline.filter(pl.col("run_id") == run).sort("start")
        assert spans["state"].to_list()[0] == f"S{paths[run][0]}"
        assert spans["start"][1:].to_list() == spans["end"][:-1].to_list()


def test_refit_on_a_widget_change_and_state_override(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    first = app.session_state["dyntools.fit"]
    by_key(app.selectbox, "latent.covariance").set_value("spherical").run()
    second = app.session_state["dyntools.fit"]
    assert second != first
    by_key(app.selectbox, "latent.n_states").set_value(2).run()
    assert not app.exception
    assert "2 states" in app.success[0].value
    assert by_key(app.selectbox, "latent.node").options == ["S0", "S1"]
    rule = chart_data(vega_charts(app)[0]).filter(pl.col("criterion").is_null())
    assert rule["n_states"].to_list() == [2]


def test_a_second_session_reads_the_fit_back_from_the_store(analysed_folder: Path) -> None:
    routed("latent-states", analysed_folder)
    app = routed("latent-states", analysed_folder)
    assert "read back from the store" in app.success[0].value


def test_clicking_a_node_shows_its_summary(analysed_folder: Path) -> None:
    app = routed("latent-states", analysed_folder)
    (graph,) = app.get("component_instance")
    assert graph.proto.component_name.endswith("agraph")
    # AppTest runs no component JavaScript: a click is the component's value changing.
    app.session_state[graph.proto.id] = "S1"
    app.run()
    assert by_key(app.selectbox, "latent.node").value == "S1"
    summary = dict(app.dataframe[0].value.itertuples(index=False))
    where = pl.from_pandas(app.dataframe[1].value)
    assert int(summary["checkpoints"]) == where["checkpoints"].sum() > 0
    # The same value on the next rerun is no new click: the selectbox wins.
    by_key(app.selectbox, "latent.node").set_value("S0").run()
    assert by_key(app.selectbox, "latent.node").value == "S0"


def test_chosen_features_and_convergence(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.radio, "latent.kind").set_value("Hook point metrics").run()
    by_key(app.multiselect, "latent.features").set_value(["fc1/l2", "fc2/l2"])
    by_key(app.slider, "latent.max_states").set_value(3).run()
    assert not app.exception
    assert "2 features" in app.success[0].value
    assert "R²" in texts(app)
    (conv,) = [
        pl.from_pandas(t.value) for t in app.dataframe if "convergence_epoch" in t.value.columns
    ]
    assert conv["run_id"].to_list() == list(RUNS)
    # Visit counts per state add up to each run's checkpoints.
    states = [c for c in conv.columns if c.startswith("S")]
    assert conv.select(pl.sum_horizontal(states)).to_series().to_list() == [7, 7]
