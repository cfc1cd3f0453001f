"""Hugging Face runs in time. One time axis per run: the committed fixtures save at fractional
epochs (0.5, 1.0, 1.5); every chart, summary and fit places them on their epochs, or on their
steps, never on a mix of both, and says which. Their first saved checkpoint is step 8, not the
initialization: what cosine_to_init compares with says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from apptest_helpers import PAGE_FILES, by_key, chart_data, routed, texts, vega_charts
from layout_builders import copy_fixture, write_bare

from dyntools.checkpoints import discover_runs
from dyntools.checkpoints.records import Axis
from dyntools.cli import main
from dyntools.hmm import FitConfig, format_fit_report
from dyntools.metrics.feature import Feature
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.fits import fit_or_load
from dyntools.store import Store, locate_db
from dyntools.views.folder import runs_table, scalars_table
from dyntools.views.time import axes_of, frame_axis, with_time

pytestmark = pytest.mark.usefixtures("_config_home")
HF_RUNS = ("hf_sharded", "hf_trainer")
EPOCHS = [0.5, 1.0, 1.5]
STEPS = [8, 16, 24]


@pytest.fixture
def hf_folder(tmp_path: Path) -> Path:
    for name in HF_RUNS:
        copy_fixture(name, tmp_path)
    compute(tmp_path, ComputeOptions(workers=1))
    return tmp_path


@pytest.fixture
def mixed_folder(hf_folder: Path) -> Path:
    """The HF runs beside a run of bare numbered files, which states no epoch."""
    write_bare(hf_folder / "bare", [0, 10, 20])
    compute(hf_folder, ComputeOptions(workers=1))
    return hf_folder


def _fit(axis: str = "auto") -> FitConfig:
    return FitConfig(max_states=2, n_states=2, restarts=1, axis=axis)


def test_folder_tables_keep_fractional_epochs(hf_folder: Path) -> None:
    runs = discover_runs(hf_folder).runs
    assert runs_table(runs)["last_epoch"].to_list() == [1.5, 1.5]
    scalars = scalars_table(runs)
    assert axes_of(scalars) == (Axis.STEP, Axis.EPOCH)
    placed = with_time(scalars, frame_axis(scalars, "auto"))
    assert sorted(set(placed["time"])) == EPOCHS
    assert sorted(set(with_time(scalars, Axis.STEP)["time"])) == [float(s) for s in STEPS]


def test_a_run_without_epochs_puts_the_folder_on_steps(mixed_folder: Path) -> None:
    scalars = scalars_table(discover_runs(mixed_folder).runs)
    assert scalars.filter(pl.col("run_id") == "bare")["epoch"].null_count() > 0
    assert axes_of(scalars) == (Axis.STEP,)
    # Asking for epochs (say from a shared link) cannot mix steps in: the whole frame is on steps.
    assert frame_axis(scalars, "epoch") is Axis.STEP


def test_fit_on_hf_runs_is_on_their_epochs(hf_folder: Path) -> None:
    store = Store(locate_db(hf_folder).path)
    result = fit_or_load(store, _fit()).result
    assert result.axis is Axis.EPOCH
    assert result.times.tolist() == EPOCHS * 2
    for node in result.graph.nodes:
        assert node.spent_per_run >= 0
        assert 0.5 <= node.first_time <= node.last_time <= 1.5
    report = format_fit_report(result)
    assert "states (times in epochs):" in report and "steps" not in report
    on_steps = fit_or_load(store, _fit("step")).result
    assert on_steps.axis is Axis.STEP
    assert on_steps.times.tolist() == [float(s) for s in STEPS] * 2
    assert all(8 <= node.first_time <= 24 for node in on_steps.graph.nodes)


def test_fit_over_a_run_without_epochs(
    mixed_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(locate_db(mixed_folder).path)
    result = fit_or_load(store, _fit()).result
    assert result.axis is Axis.STEP
    assert np.all(np.diff(result.times[:3]) > 0)
    with pytest.raises(ValueError, match=r"bare.*state no epoch.*use the step axis"):
        fit_or_load(store, _fit("epoch"))
    assert main(["fit", str(mixed_folder), "--axis", "epoch", "--restarts", "1"]) != 0
    assert "use the step axis" in capsys.readouterr().err


def test_app_pages_draw_hf_runs_on_epochs(hf_folder: Path) -> None:
    app = routed("folder", hf_folder)
    assert not app.exception
    assert by_key(app.radio, "folder.axis").value == "epoch"
    curves = chart_data(vega_charts(app)[0])
    assert sorted(set(curves["time"])) == EPOCHS

    app.switch_page(PAGE_FILES["metrics"]).run()
    assert by_key(app.radio, "metrics.axis").value == "epoch"
    values = chart_data(vega_charts(app)[0]).filter(pl.col("layer") == "value")
    assert sorted(set(values["time"])) == EPOCHS

    app.switch_page(PAGE_FILES["latent-states"]).run()
    by_key(app.slider, "latent.max_states").set_value(2).run()  # 6 checkpoints in all
    assert not app.exception
    assert "times in epochs" in texts(app)
    timeline = next(c for c in vega_charts(app) if '"start"' in c.proto.spec)
    intervals = chart_data(timeline)
    assert intervals["start"].min() == 0.5 and (intervals["end"] >= intervals["start"]).all()


def test_app_says_when_a_chart_is_on_steps(mixed_folder: Path) -> None:
    # The Metrics page offers every run: a run without epochs puts the whole chart on steps,
    # even where the shared choice (from a link) asks for epochs.
    app = routed(
        "metrics",
        mixed_folder,
        runs="bare,hf_trainer",
        weights="layers.0,classifier",
        metrics="l2",
        axis="epoch",
    )
    assert not app.exception
    assert not [r for r in app.radio if r.key == "metrics.axis"]
    assert "Time axis: step (not every checkpoint shown states an epoch)" in texts(app)
    values = chart_data(vega_charts(app)[0]).filter(pl.col("layer") == "value")
    assert sorted(set(values["time"])) == [0.0, 8, 10, 16, 20, 24]
    assert '"title": "step"' in vega_charts(app)[0].proto.spec.replace('":"', '": "')


def test_cosine_to_init_says_it_compares_with_the_first_saved_checkpoint(
    hf_folder: Path,
) -> None:
    compute(hf_folder, ComputeOptions(metrics=("cosine_to_init",), workers=1))
    store = Store(locate_db(hf_folder).path)
    feature = "classifier/cosine_to_init"
    config = FitConfig(features=(Feature.parse(feature),), max_states=2, restarts=1)
    result = fit_or_load(store, config).result
    (notice,) = [n for n in result.notices if n.subject == feature]
    expected = "step 8 (the first saved checkpoint, not the initialization)"
    assert (
        notice.message
        == f"{feature} compares hf_sharded with {expected}; hf_trainer with {expected}"
    )
    assert notice.message in format_fit_report(result)

    app = routed("metrics", hf_folder, weights="classifier", metrics="cosine_to_init")
    assert not app.exception
    assert f"cosine_to_init compares each checkpoint with {expected}." in texts(app)
