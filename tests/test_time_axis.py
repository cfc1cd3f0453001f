"""Hugging Face runs in time. One time axis per run: the committed fixtures save at fractional
epochs (0.5, 1.0, 1.5); every chart, summary and fit places them on their epochs, or on their
steps, never on a mix of both, and says which. Their first saved checkpoint is step 8, not the
initialization: what cosine_to_init compares with says so.

The pages of activations (Activations, Information plane) are checked on the same fixtures
with a probe batch made for them (``dyntools probe``): transformers rebuilds their BERT model
from config.json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from apptest_helpers import PAGE_FILES, by_key, chart_data, chart_spec, routed, texts, vega_charts
from layout_builders import copy_fixture, write_bare
from safetensors.torch import save_file

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
    # Each checkpoint stands for the half epoch up to the next one (the last one: the gap
    # before it), so a state holds 0.5 epochs per checkpoint, shared among the runs visiting it.
    assert _spent_per_run(result) == [
        pytest.approx(0.5 * checkpoints / visitors) for checkpoints, visitors in _visits(result)
    ]
    for node in result.graph.nodes:
        assert 0.5 <= node.first_time <= node.last_time <= 1.5
    report = format_fit_report(result)
    assert "states (times in epochs):" in report and "steps" not in report
    on_steps = fit_or_load(store, _fit("step")).result
    assert on_steps.axis is Axis.STEP
    assert on_steps.times.tolist() == [float(s) for s in STEPS] * 2
    assert all(8 <= node.first_time <= 24 for node in on_steps.graph.nodes)
    assert _spent_per_run(on_steps) == [
        pytest.approx(8.0 * checkpoints / visitors) for checkpoints, visitors in _visits(on_steps)
    ]


def _spent_per_run(result: Any) -> list[float]:
    return [node.spent_per_run for node in sorted(result.graph.nodes, key=lambda n: n.state)]


def _visits(result: Any) -> Iterator[tuple[int, int]]:
    """Per state, from the decoded states themselves: how many checkpoints are in it and how
    many runs visit it (two runs of three checkpoints each)."""
    paths = np.asarray(result.states).reshape(len(HF_RUNS), len(STEPS))
    assert list(result.lengths) == [len(STEPS)] * len(HF_RUNS)
    for state in range(result.n_states):
        here = paths == state
        visitors = int(here.any(axis=1).sum())
        assert visitors, f"state {state} is never visited"
        yield int(here.sum()), visitors


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


# Activations, Information plane, Compare fits ---------------------------------------------------


@pytest.fixture
def hf_activations_folder(tmp_path: Path) -> Path:
    """The HF runs with a probe batch (token ids and labels for their sequence classifier) and
    every weight and activation metric computed."""
    folder = tmp_path / "hf"
    for name in HF_RUNS:
        copy_fixture(name, folder)
    generator = torch.Generator().manual_seed(0)
    inputs = tmp_path / "probe-inputs.safetensors"  # outside the folder: not read as a run
    x = torch.randint(1, 16, (16, 8), generator=generator)  # vocab 16, 8 positions
    save_file({"x": x, "y": torch.randint(0, 2, (16,), generator=generator)}, str(inputs))
    assert main(["probe", str(folder), "--from", str(inputs)]) == 0
    summary = compute(folder, ComputeOptions(activations=True, workers=1))
    assert summary.failed == ()
    return folder


def _time_titles(spec: Any) -> list[str]:
    """The titles of every encoding of the ``time`` field in a Vega-Lite spec: where the chart
    names its time axis."""
    found: list[str] = []
    if isinstance(spec, dict):
        if spec.get("field") == "time" and "title" in spec:
            found.append(spec["title"])
        for value in spec.values():
            found += _time_titles(value)
    elif isinstance(spec, list):
        for value in spec:
            found += _time_titles(value)
    return found


def _assert_on_axis(app: Any, axis: str, charts: int) -> None:
    """Every chart of the page is on ``axis``: its time column is that column of each row (the
    epochs 0.5, 1.0, 1.5, or the steps 8, 16, 24), and the chart names the axis."""
    drawn = vega_charts(app)
    assert len(drawn) == charts
    for chart in drawn:
        data = chart_data(chart)
        assert set(data["run_id"]) == set(HF_RUNS)
        assert data["time"].to_list() == data[axis].cast(pl.Float64).to_list()
        assert sorted(set(data["time"])) == (EPOCHS if axis == "epoch" else [*map(float, STEPS)])
        titles = _time_titles(chart_spec(chart))
        assert titles and set(titles) == {axis}


@pytest.mark.parametrize(
    ("page", "key", "charts"),
    [("activations", "acts.axis", 2), ("information-plane", "info.axis", 1)],
)
def test_activation_pages_draw_hf_runs_on_epochs_or_steps(
    hf_activations_folder: Path, page: str, key: str, charts: int
) -> None:
    app = routed(page, hf_activations_folder)
    assert not app.exception
    axis = by_key(app.radio, key)
    assert (axis.value, axis.options) == ("epoch", ["step", "epoch"])
    _assert_on_axis(app, "epoch", charts)

    by_key(app.radio, key).set_value("step").run()
    assert not app.exception
    _assert_on_axis(app, "step", charts)
    # The choice is shared: the next page opens on steps too.
    app.switch_page(PAGE_FILES["metrics"]).run()
    assert by_key(app.radio, "metrics.axis").value == "step"


@pytest.mark.parametrize("page", ["activations", "information-plane"])
def test_activation_pages_without_a_probe_say_nothing_is_computed(
    hf_folder: Path, page: str
) -> None:
    # The committed fixtures carry no probe batch: their weights are computed, activations not.
    app = routed(page, hf_folder)
    assert not app.exception
    assert not vega_charts(app) and not [r for r in app.radio if str(r.key).endswith(".axis")]
    assert f"computed for `{hf_folder}` yet" in texts(app)
    assert f"`dyntools compute {hf_folder} --activations`" in texts(app)


@pytest.mark.parametrize("page", ["activations", "information-plane"])
def test_activation_pages_say_how_to_make_a_probe_for_hf_runs(hf_folder: Path, page: str) -> None:
    app = routed(page, hf_folder)
    assert not app.exception
    assert "dyntools probe" in texts(app)


def _two_fits(folder: Path) -> tuple[str, str]:
    store = Store(locate_db(folder).path)
    on_epochs = fit_or_load(store, _fit())
    on_steps = fit_or_load(store, _fit("step"))
    assert (on_epochs.result.axis, on_steps.result.axis) == (Axis.EPOCH, Axis.STEP)
    return on_epochs.config_hash, on_steps.config_hash


def test_compare_fits_draws_each_fit_on_its_own_axis(hf_folder: Path) -> None:
    on_epochs, on_steps = _two_fits(hf_folder)
    app = routed(
        "compare-fits",
        hf_folder,
        **{"compare.a": on_epochs[:12], "compare.b": on_steps[:12]},
    )
    assert not app.exception and not app.error
    said = texts(app)
    assert "**Fit A**: 2 states" in said and "times in epochs." in said
    assert "**Fit B**: 2 states" in said and "times in steps." in said
    timelines = [c for c in vega_charts(app) if '"start"' in c.proto.spec]
    assert len(timelines) == 2
    for chart, axis, times in ((timelines[0], "epoch", EPOCHS), (timelines[1], "step", STEPS)):
        intervals = chart_data(chart)
        assert sorted(set(intervals["start"])) <= [float(t) for t in times]
        assert intervals["start"].min() == times[0]
        assert (intervals["end"] > intervals["start"]).all()
        # The last interval of each run ends one gap after its last checkpoint.
        gap = times[1] - times[0]
        assert intervals.group_by("run_id").agg(pl.col("end").max())["end"].to_list() == [
            times[-1] + gap
        ] * len(HF_RUNS)
        x = chart_spec(chart)["encoding"]["x"]
        assert (x["field"], x["title"]) == ("start", axis)
    # Matched by run and step, not by time: the two axes do not keep the fits apart.
    assert "over the 6 checkpoints both fits decoded" in said


def _fit_captions(folder: Path) -> list[str]:
    """The captions under Fit A and Fit B (describe_config of each), fit A on epochs, B on
    steps."""
    on_epochs, on_steps = _two_fits(folder)
    app = routed(
        "compare-fits", folder, **{"compare.a": on_epochs[:12], "compare.b": on_steps[:12]}
    )
    assert not app.exception
    captions = [str(c.value) for c in app.caption if "covariance" in str(c.value)]
    assert len(captions) == 2
    return captions


def test_compare_fits_tells_fits_on_other_axes_apart(hf_folder: Path) -> None:
    on_epochs, on_steps = _fit_captions(hf_folder)
    assert on_epochs != on_steps


def test_compare_fits_caption_counts_a_fit_over_every_stored_feature(hf_folder: Path) -> None:
    for caption in _fit_captions(hf_folder):
        assert "0 features" not in caption
