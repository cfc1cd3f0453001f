"""AppTest of the Latent states page: live refits, model selection, timeline, graph clicks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import by_key, chart_data, direct, routed, texts, vega_charts
from streamlit.testing.v1 import AppTest

from dyntools.hmm import FitConfig, FitResult, build_feature_table, fit_result_from_json
from dyntools.hmm.hmmlearn_backend import log_likelihood
from dyntools.pipeline.fits import fit_data, fit_or_load
from dyntools.store import Store, locate_db
from dyntools.views.latent_states.frames import selection_frame
from dyntools.views.latent_states.options import fitted_runs

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
    frames = [frame.value for frame in app.dataframe]
    (summary_frame,) = [t.value for t in app.table]  # the state's summary
    summary = dict(summary_frame.itertuples(index=False))
    (where_frame,) = [f for f in frames if "visits" in f.columns]
    where = pl.from_pandas(where_frame)
    assert int(summary["checkpoints"]) == where["checkpoints"].sum() > 0
    # The same value on the next rerun is no new click: the selectbox wins.
    by_key(app.selectbox, "latent.node").set_value("S0").run()
    assert by_key(app.selectbox, "latent.node").value == "S0"


def test_chosen_features_and_convergence(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.radio, "latent.feature_set").set_value("Hook point metrics").run()
    by_key(app.multiselect, "latent.features").set_value(["fc1/l2", "fc2/l2"])
    by_key(app.slider, "latent.max_states").set_value(3).run()
    assert not app.exception
    assert "2 features" in app.success[0].value
    assert "R²" in texts(app)
    (conv,) = [pl.from_pandas(t.value) for t in app.dataframe if "converged_at" in t.value.columns]
    assert conv["run_id"].to_list() == list(RUNS)
    # Visit counts per state add up to each run's checkpoints.
    states = [c for c in conv.columns if c.startswith("S")]
    assert conv.select(pl.sum_horizontal(states)).to_series().to_list() == [7, 7]


def test_the_stability_is_shown_and_stored_with_the_fit(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.slider, "latent.max_states").set_value(3)
    by_key(app.number_input, "latent.resamples").set_value(4).run()
    assert not app.exception
    assert "Stability" in texts(app) and "of 4 resamples of the runs" in texts(app)
    stored = _stored_fit(app, analysed_folder)
    assert stored.stability is not None and stored.stability.resamples == 4
    frames = [frame.value for frame in app.dataframe]
    (kept,) = [f for f in frames if "kept_in_resamples" in f.columns]
    assert list(kept["state"]) == [f"S{s}" for s in range(stored.n_states)]


def test_a_state_named_in_the_app_is_stored_with_the_fit(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.slider, "latent.max_states").set_value(3)
    by_key(app.number_input, "latent.resamples").set_value(0).run()
    by_key(app.selectbox, "latent.node").set_value("S1").run()
    fit_hash = app.session_state["dyntools.fit"]
    by_key(app.text_input, f"latent.name.{fit_hash}.1").input("memorizing").run()
    assert not app.exception
    stored = _stored_fit(app, analysed_folder)
    assert stored.state_name(1) == "memorizing" and stored.state_name(0) == ""
    (summary,) = [t.value for t in app.table]
    assert dict(summary.itertuples(index=False))["name"] == "memorizing"
    (graph,) = app.get("component_instance")
    assert "S1 memorizing" in str(graph.proto)
    # A new session asking the same question reads the named fit back.
    again = direct("latent-states", analysed_folder)
    by_key(again.slider, "latent.max_states").set_value(3)
    by_key(again.number_input, "latent.resamples").set_value(0).run()
    assert "read back from the store" in again.success[0].value
    assert "S1 memorizing" in str(again.get("component_instance")[0].proto)


def test_every_caveat_is_shown_as_a_warning(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.slider, "latent.max_states").set_value(3).run()
    assert not app.exception
    result = _stored_fit(app, analysed_folder)
    assert result.caveats, "2 runs of 7 checkpoints: the regression at least is forced"
    warnings = [w.value for w in app.warning]
    for caveat in result.caveats:
        assert caveat.message in warnings
    assert "permutation p =" in texts(app)


def _stored_fit(app: AppTest, folder: Path) -> FitResult:
    """The fit the page shows, read back from the store by its config hash."""
    stored = Store(locate_db(folder).path).load_fit(app.session_state["dyntools.fit"])
    assert stored is not None
    return fit_result_from_json(json.loads(stored.result_json))


def test_training_scalars_as_features(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.slider, "latent.max_states").set_value(3).run()
    plain = _stored_fit(app, analysed_folder)
    scalars = by_key(app.multiselect, "latent.scalars")
    # Offered: the scalars every run logged in the store, nothing else.
    logged = Store(locate_db(analysed_folder).path).read_scalars(run_ids=list(RUNS))
    assert scalars.options == sorted(set(logged["name"].to_list()))
    assert "val_acc" in scalars.options
    assert "partly supervised" in texts(app)
    scalars.set_value(["val_acc", "train_loss"]).run()
    assert not app.exception
    with_scalars = _stored_fit(app, analysed_folder)
    assert with_scalars.config.scalar_features == ("val_acc", "train_loss")
    assert with_scalars.columns == (*plain.columns, "scalar:val_acc", "scalar:train_loss")
    assert f"{len(plain.columns) + 2} features" in app.success[0].value
    # The choice survives a rerun, and the same settings are read back, not refitted.
    app.run()
    assert by_key(app.multiselect, "latent.scalars").value == ["val_acc", "train_loss"]
    assert app.session_state["dyntools.fit"] == with_scalars.config_hash
    assert "already shown in this session" in app.success[0].value
    # A new session with the same settings reads the fit back from the store.
    again = direct("latent-states", analysed_folder)
    by_key(again.slider, "latent.max_states").set_value(3)
    by_key(again.multiselect, "latent.scalars").set_value(["val_acc", "train_loss"]).run()
    assert "read back from the store" in again.success[0].value
    assert again.session_state["dyntools.fit"] == with_scalars.config_hash


def test_scalars_with_hook_point_features(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.radio, "latent.feature_set").set_value("Hook point metrics").run()
    by_key(app.multiselect, "latent.features").set_value(["fc1/l2"])
    by_key(app.multiselect, "latent.scalars").set_value(["train_loss"])
    by_key(app.slider, "latent.max_states").set_value(3).run()
    assert not app.exception
    assert _stored_fit(app, analysed_folder).columns == ("fc1/l2", "scalar:train_loss")


def test_a_heldout_run_is_scored_not_fitted(analysed_folder: Path) -> None:
    kept, held = RUNS
    app = direct("latent-states", analysed_folder)
    by_key(app.slider, "latent.max_states").set_value(3)
    by_key(app.multiselect, "latent.heldout").set_value([held]).run()
    assert not app.exception
    assert "1 run fitted, 1 held out" in app.success[0].value
    result = _stored_fit(app, analysed_folder)
    assert result.config.heldout_runs == (held,)
    assert fitted_runs(result) == (kept,)
    # The page's held-out series is the selection frame's new column, one value per n.
    (scored,) = [c for c in vega_charts(app) if "heldout_log_likelihood" in chart_data(c).columns]
    shown = chart_data(scored).drop_nulls("heldout_log_likelihood").sort("n_states")
    frame = selection_frame(result)
    scored_rows = frame.drop_nulls("heldout_log_likelihood")
    # 7 checkpoints: an n whose every restart collapses a state has no model to score.
    assert shown["n_states"].to_list() == scored_rows["n_states"].to_list()
    assert shown["n_states"].to_list()[:2] == [1, 2]
    assert (
        shown["heldout_log_likelihood"].to_list() == scored_rows["heldout_log_likelihood"].to_list()
    )
    # Independently: score the chosen model on each run's normalized features. The held-out
    # run gives the reported value per step; the kept run alone gives the fitted log-likelihood
    # (both runs together would not: the model was fitted on the kept run only).
    data = fit_data(Store(locate_db(analysed_folder).path))
    table = build_feature_table(
        data.for_fit(None),
        paper=True,
        runs=list(RUNS),
        normalize=result.config.normalize,
        heldout_runs=[held],  # its rows take no part in the normalization
    )
    chosen = frame.row(by_predicate=pl.col("n_states") == result.n_states, named=True)
    on_held = log_likelihood(result.params, table.subset([held]).values, [7])
    assert chosen["heldout_log_likelihood"] == pytest.approx(on_held / 7, rel=1e-9)
    on_kept = log_likelihood(result.params, table.subset([kept]).values, [7])
    assert chosen["best_log_likelihood"] == pytest.approx(on_kept, rel=1e-9)
    on_both = log_likelihood(result.params, table.values, table.lengths)
    assert chosen["best_log_likelihood"] != pytest.approx(on_both, rel=1e-3)
    # The held-out run is still decoded and shown in the timeline.
    (timeline,) = [c for c in vega_charts(app) if "start" in chart_data(c).columns]
    assert set(chart_data(timeline)["run_id"].to_list()) == set(RUNS)
    assert "decoded with the model fitted on the others" in texts(app)
    # The choice survives a rerun.
    app.run()
    assert by_key(app.multiselect, "latent.heldout").value == [held]


def test_holding_out_every_run_asks_to_keep_one(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.multiselect, "latent.heldout").set_value(list(RUNS)).run()
    assert not app.exception
    assert any("keep at least one run" in info.value for info in app.info)
    assert not app.success


def test_fit_settings_come_back_from_the_url(analysed_folder: Path) -> None:
    """A reload or a shared link carries every fit setting: the page opened on those query
    parameters shows the same fit (the hash of its full configuration)."""
    app = direct("latent-states", analysed_folder)
    by_key(app.selectbox, "latent.covariance").set_value("spherical")
    by_key(app.slider, "latent.max_states").set_value(3)
    by_key(app.number_input, "latent.seed").set_value(5)
    by_key(app.selectbox, "latent.n_states").set_value(2).run()
    assert not app.exception and not app.error
    shown = app.session_state["dyntools.fit"]
    url = {
        "runs": ",".join(RUNS),
        "latent.covariance": "spherical",
        "latent.max_states": "3",
        "latent.seed": "5",
        "latent.n_states": "2",
    }
    again = direct("latent-states", analysed_folder, **url)
    assert not again.exception
    assert by_key(again.selectbox, "latent.covariance").value == "spherical"
    assert by_key(again.selectbox, "latent.n_states").value == 2
    assert again.session_state["dyntools.fit"] == shown
    assert "read back from the store" in again.success[0].value


def test_chosen_features_come_back_from_the_url(analysed_folder: Path) -> None:
    features = ["fc1/l2", "fc2/spectral"]
    app = direct(
        "latent-states",
        analysed_folder,
        **{"latent.feature_set": "Hook point metrics", "latent.features": features[0]},
    )
    assert by_key(app.multiselect, "latent.features").value == [features[0]]
    by_key(app.multiselect, "latent.features").set_value(features).run()
    assert by_key(app.multiselect, "latent.features").value == features


def test_default_runs_are_one_tasks_and_features_are_layer_norms(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    assert by_key(app.multiselect, "latent.runs").value == list(RUNS)
    by_key(app.radio, "latent.feature_set").set_value("Hook point metrics").run()
    # Not the first names of the alphabet (activation statistics): the weight norms, in
    # network order.
    assert by_key(app.multiselect, "latent.features").value == [
        "fc1/l2",
        "fc1/spectral",
        "fc2/l2",
        "fc2/spectral",
    ]


def test_transition_drivers_posteriors_and_downloads(analysed_folder: Path) -> None:
    app = direct("latent-states", analysed_folder)
    by_key(app.selectbox, "latent.n_states").set_value(3).run()
    assert not app.exception
    fit_hash = app.session_state["dyntools.fit"]
    stored = Store(locate_db(analysed_folder).path).load_fit(fit_hash)
    assert stored is not None
    result = fit_result_from_json(json.loads(stored.result_json))
    box = by_key(app.selectbox, "latent.transition")
    switches = [e for e in result.graph.edges if e.source != e.target]
    assert box.options == [
        f"S{e.source} → S{e.target} ({e.count} switch{'es' if e.count > 1 else ''})"
        for e in switches
    ]
    first = switches[0]
    drivers = next(
        chart_data(c)
        for c in vega_charts(app)
        if "transition_drivers" in c.proto.spec or "switch log-odds gradient" in c.proto.spec
    )
    gradient = drivers.filter(pl.col("kind") == "switch log-odds gradient").sort("rank")
    assert gradient["feature"].to_list() == [d.feature for d in first.top_gradient]
    assert gradient["score"].to_list() == pytest.approx([d.value for d in first.top_gradient])
    # The posterior areas of the chosen run: per checkpoint the states' probabilities sum to 1.
    posteriors = next(
        chart_data(c) for c in vega_charts(app) if "posterior probability" in c.proto.spec
    )
    assert set(posteriors["run_id"]) == {result.run_ids[0]}
    sums = posteriors.group_by("step").agg(pl.col("probability").sum())["probability"]
    assert sums.to_list() == pytest.approx([1.0] * sums.len())
    labels = [button.proto.label for button in app.get("download_button")]
    assert "Fit (JSON)" in labels
