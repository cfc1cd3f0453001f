"""AppTest of the Hook points page: the layer tree, filtering, compute with progress."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import blocks, by_key, direct, routed, texts

from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")


def test_tree_shows_shapes_and_parameter_counts(analysed_folder: Path) -> None:
    app = routed("hook-points", analysed_folder)
    assert not app.exception
    assert app.title[0].value == "Hook points"
    tree = pl.from_pandas(app.dataframe[0].value)
    fc1 = tree.filter(pl.col("hook_point") == "fc1").row(0, named=True)
    assert fc1["parameters"] == 1000 * 40 + 1000  # the MLP 40-1000-1 of the sample task
    assert "weight [1000, 40]" in fc1["tensors"] and "bias [1000]" in fc1["tensors"]
    assert by_key(app.multiselect, "hooks.select").value == ["fc1", "fc2"]


def test_glob_filter_narrows_the_tree_and_selects_matches(analysed_folder: Path) -> None:
    app = routed("hook-points", analysed_folder)
    by_key(app.text_input, "hooks.filter").input("fc*2").run()
    assert pl.from_pandas(app.dataframe[0].value)["hook_point"].to_list() == ["fc2"]
    by_key(app.button, "hooks.select_matching").click().run()
    assert by_key(app.multiselect, "hooks.select").value == ["fc2"]
    assert app.session_state["dyntools.weight_hooks"] == ["fc2"]


def test_unknown_name_in_the_filter_is_an_error_message(analysed_folder: Path) -> None:
    app = routed("hook-points", analysed_folder)
    by_key(app.text_input, "hooks.filter").input("fc3").run()
    assert not app.exception
    assert "fc3" in app.error[0].value


def test_already_computed_table_matches_the_store(analysed_folder: Path) -> None:
    app = direct("hook-points", analysed_folder)
    computed = pl.from_pandas(app.dataframe[-1].value)
    summary = Store(locate_db(analysed_folder).path).summary()
    row = computed.filter((pl.col("hook_point") == "fc1") & (pl.col("metric") == "l2")).row(
        0, named=True
    )
    expected = summary.filter((pl.col("hook_point") == "fc1") & (pl.col("metric") == "l2"))
    assert row["runs"] == 2
    assert row["checkpoints"] == expected["checkpoints"].sum() == 14


def test_compute_from_the_page_fills_the_store_with_progress(fresh_folder: Path) -> None:
    app = routed("hook-points", fresh_folder)
    assert "Nothing computed" in texts(app)
    by_key(app.multiselect, "hooks.select").set_value(["fc2"])
    by_key(app.multiselect, "hooks.metrics").set_value(["l2", "spectral"])
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert not app.exception
    (status,) = blocks(app, "status")
    assert "Computed 14 checkpoints" in status.proto.label
    assert app.get("progress")[0].proto.value == 100
    metrics = Store(locate_db(fresh_folder).path).read_metrics()
    hook_level = metrics.filter(pl.col("scope") == "hook_point")
    assert set(hook_level["hook_point"]) == {"fc2"}
    assert set(hook_level["metric"]) == {"l2", "spectral"}
    computed = pl.from_pandas(app.dataframe[-1].value)
    assert set(computed["metric"]) >= {"l2", "spectral"}
    # A second press finds everything up to date.
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert "skipped 14 already up to date" in blocks(app, "status")[0].proto.label


def test_run_and_compute_follow_the_runs_chosen_elsewhere(fresh_folder: Path) -> None:
    app = routed("hook-points", fresh_folder, runs="sparse-parity/seed1")
    assert by_key(app.selectbox, "hooks.run").value == "sparse-parity/seed1"
    scope = by_key(app.radio, "hooks.scope")
    assert scope.value == "the 1 runs chosen on the other pages"
    by_key(app.multiselect, "hooks.select").set_value(["fc2"])
    by_key(app.multiselect, "hooks.metrics").set_value(["l2"])
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert not app.exception
    stored = Store(locate_db(fresh_folder).path).read_metrics()
    assert set(stored["run_id"]) == {"sparse-parity/seed1"}
    # Every run, when asked: the other run only is computed now.
    by_key(app.radio, "hooks.scope").set_value("every run in the folder (2)")
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert "Computed 7 checkpoints, skipped 7" in blocks(app, "status")[0].proto.label
    assert set(Store(locate_db(fresh_folder).path).read_metrics()["run_id"]) == {
        "sparse-parity/seed0",
        "sparse-parity/seed1",
    }


def test_roles_follow_the_module_types_and_the_chosen_preset_is_computed(
    analysed_folder: Path, fresh_folder: Path
) -> None:
    app = routed("hook-points", analysed_folder)
    roles = next(
        pl.from_pandas(frame.value)
        for frame in app.dataframe
        if "paper_features" in frame.value.columns
    )
    assert roles.filter(pl.col("tensor") == "fc1.weight")["layer"].to_list() == ["linear"]
    assert "Roles from the rebuilt model's module types" in texts(app)

    app = routed("hook-points", fresh_folder, **{"hooks.preset": "polypythias"})
    assert by_key(app.selectbox, "hooks.preset").value == "polypythias"
    assert "under preset `polypythias`" in texts(app)
    by_key(app.multiselect, "hooks.metrics").set_value(["l2", "mean_w"])
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert not app.exception
    metrics = Store(locate_db(fresh_folder).path).read_metrics()
    network = metrics.filter(pl.col("scope") == "network")
    assert network.height and network["params"].str.contains('"preset":"polypythias"').all()
